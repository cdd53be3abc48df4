"""Reading many sessions, or a large one, a page at a time: the sessions
by ``SCAN`` (their states read by ``MGET``), a session's instances by
``HMGET`` of the names its state lists, and summaries from the states
(see :mod:`..summaries`); what :class:`.client.RedisStorage` answers for
the operator commands with."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from ...core.errors import CorruptSession
from ...core.state import Instance
from ..kv import iter_records, parse_state, uid_of
from ..summaries import SessionSummary, kept_summary, tally
from ..txn import check_uid
from .layout import named_records
from .scripts import CLIENT_ERRORS

__all__ = ["iter_instances", "iter_sessions", "summaries"]

logger = logging.getLogger("celery_triggers")


def _states(store: Any, keys: list[str]) -> list[Any]:
    """The texts of the state ``keys`` (None: gone), in one round trip (a
    cluster: one per node)."""
    return list(store.client.mget_nonatomic(keys) if store.cluster else store.client.mget(keys))


def iter_sessions(store: Any, batch: int) -> Iterator[list[str]]:
    """UIDs, about ``batch`` at a time, as ``SCAN`` finds their states. A
    session whose state is corrupt is listed when its UID can still be read
    (reading it then raises :class:`CorruptSession`); else it is left out
    with a warning."""
    try:
        keys: list[str] = []
        scan = store.client.scan_iter(match=f"{store.prefix}:{{*}}:state", count=batch)
        for key in scan:
            keys.append(key)
            if len(keys) >= batch:
                yield _uids(_states(store, keys))
                keys = []
        if keys:
            yield _uids(_states(store, keys))
    except CLIENT_ERRORS as exc:
        raise store.error(None, exc) from exc


def _uids(texts: list[Any]) -> list[str]:
    uids = []
    for text in texts:
        if text is None:  # deleted or expired since the scan found it
            continue
        try:
            state = parse_state("?", text)
            uid = state["uid"] if state is not None else None
        except CorruptSession:
            uid = uid_of(text)
        if isinstance(uid, str):
            uids.append(uid)
        else:
            logger.warning("celery-triggers: a stored session state is unreadable, UID included")
    return uids


def _state(store: Any, uid: str) -> dict[str, Any] | None:
    try:
        text = store.client.get(store.keys(uid)[0])
    except CLIENT_ERRORS as exc:
        raise store.error(uid, exc) from exc
    return parse_state(uid, text)


def iter_instances(store: Any, uid: str, batch: int, state: dict[str, Any] | None = None) -> Iterator[list[Instance]]:
    """The session's instances, ``batch`` at a time (one ``HMGET`` each, of
    their fields in the layout of ``layout``)."""
    check_uid(uid)
    state = _state(store, uid) if state is None else state
    if state is None:
        return
    key = store.keys(uid)[1]

    def get(fields: list[str]) -> list[Any]:
        try:
            return list(store.client.hmget(key, fields))
        except CLIENT_ERRORS as exc:
            raise store.error(uid, exc) from exc

    def fetch(names: list[str]) -> list[Any]:
        return named_records(names, get)

    yield from iter_records(uid, state, fetch, batch)


def summaries(store: Any, uids: Sequence[str], batch: int = 500) -> dict[str, SessionSummary | CorruptSession]:
    """From the states (one ``MGET`` per ``batch`` sessions): the summary a
    state keeps, else (a session written before summaries were kept, or
    with work in flight) one tallied from its records."""
    out: dict[str, SessionSummary | CorruptSession] = {}
    for start in range(0, len(uids), batch):
        chunk = [check_uid(u) for u in uids[start : start + batch]]
        try:
            texts = _states(store, [store.keys(u)[0] for u in chunk])
        except CLIENT_ERRORS as exc:
            raise store.error(None, exc) from exc
        for uid, text in zip(chunk, texts, strict=True):
            try:
                state = parse_state(uid, text)
                if state is None:
                    out[uid] = SessionSummary()
                    continue
                out[uid] = kept_summary(state) or tally(iter_instances(store, uid, 1000, state))
            except CorruptSession as exc:
                out[uid] = exc
    return out
