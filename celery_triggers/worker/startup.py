"""The storage check at a worker's start, retried as Celery retries its
broker connection: a storage that is down when the worker boots (a
container started before Redis) delays the worker instead of stopping it.

Celery's own settings decide: ``broker_connection_retry_on_startup``
(else ``broker_connection_retry``) whether to retry, and
``broker_connection_max_retries`` (100; 0 or None: for ever) how often;
the wait grows as Celery's does (2 s, 4 s, ... up to 30 s). Each attempt
logs one line naming the storage URL, its password masked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..core.errors import StorageUnavailable
from ..storage import StorageBackend, mask_url

__all__ = ["ping_until_up"]

logger = logging.getLogger("celery_triggers")

#: The session the check reads (it names nothing a user made: left out of messages).
_PING_PREFIX = "session 'celery-triggers:ping': "


def ping_until_up(conf: Any, storage: StorageBackend, sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once ``storage`` answers; raise :class:`StorageUnavailable`
    naming it when Celery's settings say to stop retrying."""
    retry = conf.get("broker_connection_retry_on_startup")
    if retry is None:
        retry = conf.get("broker_connection_retry", True)
    limit = conf.get("broker_connection_max_retries")
    attempt = 0
    while True:
        try:
            storage.ping()
            if attempt:
                logger.warning("celery-triggers: storage %s answers now", mask_url(storage.url))
            return
        except StorageUnavailable as exc:
            reason = str(exc).replace(_PING_PREFIX, "").rstrip(".")
            if mask_url(storage.url) not in reason:
                reason = f"storage {mask_url(storage.url)}: {reason}"
            if not retry or (limit and attempt >= limit):
                raise StorageUnavailable(f"storage unreachable at the worker's start: {reason}") from None
            attempt += 1
            delay = min(2.0 * attempt, 30.0)
            logger.error(
                "celery-triggers: storage unreachable at the worker's start: %s. "
                "Trying again in %.2f seconds... (%d/%s)",
                reason,
                delay,
                attempt,
                limit or "no limit",
            )
            sleep(delay)
