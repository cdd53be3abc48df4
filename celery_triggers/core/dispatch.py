"""What the manager hands a runner: one ready instance and how to reach it.

Lives below the runners (the manager creates these, runners consume them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import TaskConfig
from .engine import task_kwargs
from .state import Instance

__all__ = ["HEADER_EPOCH", "HEADER_INSTANCE", "HEADER_SESSION", "HEADER_STORAGE", "LOCAL_ALIAS", "Dispatch"]

#: Message headers that tie a Celery message to its session and instance.
HEADER_SESSION = "triggers_session"
HEADER_INSTANCE = "triggers_instance"
#: Sent only when the session lives elsewhere than the app's storage: the
#: *alias* of that storage (a key of ``triggers_storages``), never a URL.
HEADER_STORAGE = "triggers_storage"
#: The epoch of the storage the message was sent from (see
#: ``storage/epoch.py``): a worker tells a lost storage from a stale message.
HEADER_EPOCH = "triggers_epoch"
#: Prefix of an alias that only this process knows (a session storage built
#: by hand, e.g. the seed's ``CacheStorageBackend(uid)``): fine for the
#: in-process runners, refused by the Celery runner.
LOCAL_ALIAS = "~"


@dataclass(frozen=True)
class Dispatch:
    """One ready instance, with what a runner needs to execute it."""

    session_uid: str
    instance: Instance
    config: TaskConfig
    #: Alias of the session's storage when it is not the app's own.
    storage_alias: str | None = None
    #: The epoch of that storage, when known.
    epoch: str | None = None

    @property
    def task_id(self) -> str | None:
        value = self.instance.metadata.get("task_id")
        return str(value) if value else None

    @property
    def headers(self) -> dict[str, Any]:
        headers = {HEADER_SESSION: self.session_uid, HEADER_INSTANCE: self.instance.name}
        if self.storage_alias is not None:
            headers[HEADER_STORAGE] = self.storage_alias
        if self.epoch is not None:
            headers[HEADER_EPOCH] = self.epoch
        return headers

    @property
    def trigger_kwargs(self) -> dict[str, dict[str, Any]]:
        """What the task will receive (``withParams`` merged in), for runners
        that need it; a Celery worker reads it from storage, not from the
        message."""
        return task_kwargs(self.config, self.instance)
