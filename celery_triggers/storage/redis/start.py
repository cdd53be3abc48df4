"""The worker's start on Redis in one round trip (``RedisStorage.start``).

A script checks the instance's status and the message's token and puts
the start's fields at the end of the record without re-encoding it (see
``records``); it returns the session state too, so the finish that follows
can commit without reading (one more round trip)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ...core import engine
from ...core.errors import UnknownInstance
from ...core.state import Instance, Snapshot, Status
from ..kv import parse_state
from ..records import compact_uuid, decode_instance, encode_metadata_fragment, to_ms
from ..txn import check_uid
from .known import Cached, state_sha
from .layout import text
from .scripts import CLIENT_ERRORS
from .transaction import Store

__all__ = ["Started", "start"]

#: What a start returns: the instance before and after, the session's own
#: configs, and what this process knows of the session after it.
Started = tuple[Instance, Instance, dict[str, Any], Any]


def start(
    store: Store,
    generic: Callable[[], Started],
    uid: str,
    name: str,
    token: str,
    now: float,
    *,
    track: bool,
    metadata: Mapping[str, Any],
    session_ttl: float | None,
) -> Started:
    """``StorageBackend.start`` in one script; ``generic()`` (the generic
    transaction) when the start carries fields the script does not write,
    or the record has another layout."""
    check_uid(uid)
    extra = encode_metadata_fragment(dict(metadata))
    if extra is None or "attempts" in metadata:
        return generic()
    compact = compact_uuid(token) or ""
    args = [name, token, "1" if track else "0", to_ms(now), extra, -1 if session_ttl else 0, compact]
    try:
        code, raw_version, state_text, record, *old = store.call((store.scripts.start.sha, store.keys(uid), args))
    except CLIENT_ERRORS as exc:
        raise store.error(uid, exc) from exc
    state = parse_state(uid, state_text)
    if not record:
        raise UnknownInstance(f"no instance {name!r} in session {uid!r}")
    current = decode_instance(uid, name, record, state.get("base") if state is not None else None)
    before = after = current
    if code == 1:  # the script started it and returned the new record, and the old status
        before = Instance(current.task, current.number, Status(text(old[0])), current.kwargs, None, {})
    elif code == 0:  # say why it cannot start, or an untracked start: nothing written
        changes = engine.start(Snapshot(instances={name: current}), name, now, token, track=track, **metadata)
        if changes.instances:  # the script and the engine disagree: take the generic path
            code = 2
    if code == 2:
        return generic()
    cached = _after_start(store, uid, int(raw_version), state, state_text, name, record, wrote=code == 1)
    store.known.remember(uid, cached)
    return before, after, dict(state["configs"]) if state is not None else {}, cached


def _after_start(
    store: Store,
    uid: str,
    version: int,
    state: dict[str, Any] | None,
    state_text: Any,
    name: str,
    record: Any,
    *,
    wrote: bool,
) -> Cached | None:
    """What this process knows of the session after a start script: what
    it knew before, when that was the version just before the script's
    (the script changes only this instance's record and the version), with
    the new record; else the state and the record the script returned."""
    if state is None:
        return None
    sha = state_sha(state_text)
    known = store.known.known(uid)
    if known is not None and known.version == version - wrote and known.state_sha == sha:
        return replace(known, version=version, records={**known.records, name: record})
    return Cached(uid, version, state_text, {name: record}, state_sha=sha)
