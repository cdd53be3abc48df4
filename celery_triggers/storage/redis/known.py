"""What a Redis storage object knows of the sessions it used last, so a
transaction can start without reading (see :mod:`.redis`): the session's
state, records and waiting index at a version, kept for the 1,024 most
recently used sessions."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..kv import parse_state

__all__ = ["RECENT_SESSIONS", "Cached", "Recent", "begin", "state_sha"]

#: Sessions whose state each backend object remembers.
RECENT_SESSIONS = 1024


@dataclass
class Cached:
    """A session as this process last saw it at ``version``: its state (None
    for a session that does not exist), the instance records read or
    written, and the waiting index for the (task, trigger) pairs it knows
    (``complete``: for every pair, an absent one being empty)."""

    uid: str
    version: int
    #: The state's stored text (None: no session). Kept as text, not parsed:
    #: a thousand sessions' parsed states would be a large, long-lived
    #: graph of dicts for the garbage collector to scan again and again.
    state_text: str | bytes | None
    records: dict[str, Any]
    waiting: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    complete: bool = False
    #: SHA-1 of the state's stored text ("" for none): the commit checks it.
    state_sha: str = ""


def state_sha(text: str | bytes | None) -> str:
    if not text:
        return ""
    return hashlib.sha1(text if isinstance(text, bytes) else text.encode()).hexdigest()  # noqa: S324 - a checksum


def begin(
    cached: Cached,
) -> tuple[int, str, dict[str, Any] | None, dict[str, Any], dict[tuple[str, str], list[str]], bool]:
    """Version, state SHA, state, records, waiting index and ``complete`` to
    start a transaction from: copies (the state freshly parsed), since a
    transaction changes its state in place, and one whose commit failed must
    not leave its changes in what the next attempt starts from."""
    state = parse_state(cached.uid, cached.state_text)
    waiting = {p: list(v) for p, v in cached.waiting.items()}
    return cached.version, cached.state_sha, state, dict(cached.records), waiting, cached.complete


class Recent:
    """A thread-safe LRU of :class:`Cached` sessions."""

    def __init__(self, size: int = RECENT_SESSIONS):
        self.size = size
        self._sessions: OrderedDict[str, Cached] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, uid: str, cached: Cached | None) -> None:
        """Keep ``cached`` as what is known of ``uid`` (None: forget it)."""
        with self._lock:
            if cached is None:
                self._sessions.pop(uid, None)
                return
            self._sessions[uid] = cached
            self._sessions.move_to_end(uid)
            while len(self._sessions) > self.size:
                self._sessions.popitem(last=False)

    def known(self, uid: str) -> Cached | None:
        """What is known of the session, if anything."""
        with self._lock:
            return self._sessions.get(uid)

    def recall(self, uid: str) -> Cached:
        """What is known of the session, or the guess that it is new: a
        transaction starts from it without reading, and its commit checks
        the version (one round trip when the guess holds)."""
        known = self.known(uid)
        return known if known is not None else Cached(uid, 0, None, {}, {}, complete=True)

    def __len__(self) -> int:
        return len(self._sessions)
