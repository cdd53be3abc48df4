"""A fire's input checked at the edge, before any storage is touched: the
session's UID, the trigger's name (and a warning when it is probably a
typo), the trigger's kwargs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.data import MAX_NAME_LENGTH, MAX_UID_LENGTH, check_text, normalize_kwargs
from ..core.errors import InvalidName, InvalidSession
from .host import Host
from .typos import warn_if_misspelt

__all__ = ["checked_event", "checked_uid"]


def checked_uid(uid: str) -> None:
    """A session written to must have a UID that forges no output line
    (storage still reads one stored before that rule: see ``check_uid``)."""
    problem = check_text(uid, what="a session UID", limit=MAX_UID_LENGTH)
    if problem is not None:
        raise InvalidSession(problem)


def checked_event(
    host: Host,
    uid: str,
    trigger_name: str,
    trigger_kwargs: Mapping[str, Any] | None,
    max_bytes: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The trigger name and kwargs (and the session's UID) checked, with a
    warning when the name is probably misspelt."""
    checked_uid(uid)
    problem = check_text(trigger_name, what="a trigger name", limit=MAX_NAME_LENGTH)
    if problem is not None:
        raise InvalidName(problem)
    configs = host.configs
    if trigger_name not in configs.watchers:
        warn_if_misspelt(configs, uid, trigger_name)
    if trigger_kwargs is None or (isinstance(trigger_kwargs, Mapping) and not trigger_kwargs):
        return trigger_name, {}  # nothing to check or measure: no settings lookup
    limit = host.max_kwargs_bytes if max_bytes is None else max_bytes
    return trigger_name, normalize_kwargs(trigger_kwargs, what=f"trigger {trigger_name!r}", max_bytes=limit)
