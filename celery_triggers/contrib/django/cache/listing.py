"""Reading a large session a batch at a time on the cache-API path (one
``get_many`` per batch of the names its state lists), and the summaries
the states keep (see :mod:`celery_triggers.storage.summaries`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ....core.errors import CorruptSession
from ....core.state import Instance
from ....storage.kv import iter_records, parse_state
from ....storage.summaries import SessionSummary, kept_summary, tally
from ....storage.txn import check_uid

if TYPE_CHECKING:
    from .backend import DjangoCacheStorage

__all__ = ["iter_instances", "summaries"]


def iter_instances(
    storage: DjangoCacheStorage, uid: str, batch: int, state: dict[str, Any] | None = None
) -> Iterator[list[Instance]]:
    check_uid(uid)
    cache, layout = storage.cache, storage.layout
    if state is None:
        state = parse_state(uid, cache.get(layout.key(uid, "state")))
        if state is None:
            return

    def fetch(names: list[str]) -> list[Any]:
        keys = [layout.instance(uid, n) for n in names]
        found = cache.get_many(keys)
        return [found.get(k) for k in keys]

    yield from iter_records(uid, state, fetch, batch)


def summaries(storage: DjangoCacheStorage, uids: Sequence[str]) -> dict[str, SessionSummary | CorruptSession]:
    """One ``get_many`` of states per 500 sessions."""
    cache, layout = storage.cache, storage.layout
    out: dict[str, SessionSummary | CorruptSession] = {}
    for start in range(0, len(uids), 500):
        keys = {layout.key(check_uid(u), "state"): u for u in uids[start : start + 500]}
        texts = cache.get_many(list(keys))
        for key, uid in keys.items():
            try:
                state = parse_state(uid, texts.get(key))
                if state is None:
                    out[uid] = SessionSummary()
                else:
                    out[uid] = kept_summary(state) or tally(iter_instances(storage, uid, 1000, state))
            except CorruptSession as exc:
                out[uid] = exc
    return out
