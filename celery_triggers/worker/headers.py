"""Which instance a Celery message is for: its celery-triggers headers,
validated with the rules a fire applies to names (a message is anyone's
text), in the task (the protocol) and in the worker's main process (the
lifecycle handlers, from a request's headers)."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..core.data import MAX_NAME_LENGTH, MAX_UID_LENGTH, check_text
from ..core.dispatch import HEADER_EPOCH, HEADER_INSTANCE, HEADER_SESSION, HEADER_STORAGE
from ..core.state import split_instance_name

__all__ = ["MessageIds", "trigger_headers"]

#: Longest instance name: a task name, "#" and a number.
_MAX_INSTANCE_LENGTH = MAX_NAME_LENGTH + 21


class MessageIds(NamedTuple):
    """The session, instance, storage alias (None: the app's storage) and
    storage epoch (None: not sent) a message names."""

    uid: str
    name: str
    alias: str | None = None
    epoch: str | None = None


def trigger_headers(request: Any) -> MessageIds | None:
    """What a task request's celery-triggers headers name; None when it
    carries none of them (a plain call of the task).

    Raises ``ValueError`` naming the problem (values escaped and truncated)
    when the headers are malformed: one without the others, not a string,
    too long, with control characters, or an instance name that does not
    parse. Such a message was not dispatched by celery-triggers, and is
    neither a plain call: the worker runs nothing for it.

    On a worker, custom message headers become request attributes (and
    ``request.headers``); in ``Task.apply`` they stay in ``request.headers``.
    """
    headers = getattr(request, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    found = {}
    for header in (HEADER_SESSION, HEADER_INSTANCE, HEADER_STORAGE, HEADER_EPOCH):
        value = getattr(request, header, None)
        found[header] = headers.get(header) if value is None else value
    uid, name, alias = found[HEADER_SESSION], found[HEADER_INSTANCE], found[HEADER_STORAGE]
    epoch = found[HEADER_EPOCH]
    if uid is None and name is None and alias is None:
        return None
    if uid is None or name is None:
        present = HEADER_SESSION if uid is not None else HEADER_INSTANCE if name is not None else HEADER_STORAGE
        missing = HEADER_INSTANCE if uid is not None else HEADER_SESSION
        raise ValueError(f"header {present} without {missing}")
    problem = (
        check_text(uid, what=f"header {HEADER_SESSION}", limit=MAX_UID_LENGTH)
        or check_text(name, what=f"header {HEADER_INSTANCE}", limit=_MAX_INSTANCE_LENGTH)
        or (None if alias is None else check_text(alias, what=f"header {HEADER_STORAGE}", limit=MAX_NAME_LENGTH))
        or (None if epoch is None else check_text(epoch, what=f"header {HEADER_EPOCH}", limit=64))
    )
    if problem is not None:
        raise ValueError(problem)
    try:
        split_instance_name(name)
    except ValueError as exc:
        raise ValueError(f"header {HEADER_INSTANCE}: {exc}") from None
    return MessageIds(uid, name, alias, epoch)
