"""In-process storage for tests and the eager runner. Not shared between
processes. Records are kept as JSON text, exactly like the other backends,
so a test on memory storage catches non-JSON data too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..core.data import dumps
from ..core.engine import Needs
from ..core.state import IN_FLIGHT, Instance, Status
from .base import StorageBackend
from .deadlines import SortedDeadlines
from .records import decode_instance, encode_instance
from .txn import Prefetch, Raw, SessionTxn, check_uid

__all__ = ["MemoryStorage"]


@dataclass
class _Session:
    triggers: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)
    #: (task, trigger) -> unstarted instances awaiting it (the index fires use).
    waiting: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: instance -> the (task, trigger) keys it is indexed under.
    indexed: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    configs: str | None = None
    updated_at: float = 0.0
    #: Instances scheduled or running (what keeps a session from being purged).
    in_flight: set[str] = field(default_factory=set)
    #: Idempotency keys used by fires -> the instance names they scheduled (JSON).
    keys: dict[str, str] = field(default_factory=dict)


class _MemoryTxn(SessionTxn):
    def __init__(self, uid: str, session: _Session):
        super().__init__(uid)
        self.session = session
        self.pending: list[tuple[dict[str, str], dict[str, str], dict[str, Instance]]] = []
        self.pending_configs: str | None = None
        self.pending_keys: dict[str, str] = {}

    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        s = self.session
        names = set(needs.instances)
        for key in needs.waiting:
            names |= s.waiting.get(key, set())
        return (
            {k: s.triggers[k] for k in (s.triggers if needs.all_triggers else needs.triggers) if k in s.triggers},
            {k: s.tasks[k] for k in needs.tasks if k in s.tasks},
            {k: s.instances[k] for k in names if k in s.instances},
        )

    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        self.pending.append(
            ({k: dumps(v) for k, v in triggers.items()}, {k: dumps(v) for k, v in tasks.items()}, instances)
        )

    def read_configs_raw(self) -> str | None:
        return self.session.configs

    def write_configs_raw(self, text: str) -> None:
        self.pending_configs = text

    def read_key_raw(self, key: str) -> str | None:
        return self.pending_keys.get(key, self.session.keys.get(key))

    def write_key_raw(self, key: str, text: str) -> None:
        self.pending_keys[key] = text

    def commit(self) -> None:
        s = self.session
        # Encode everything first so a bad value changes nothing.
        encoded = [(t, k, {n: encode_instance(i) for n, i in inst.items()}, inst) for t, k, inst in self.pending]
        for triggers, tasks, texts, instances in encoded:
            s.triggers.update(triggers)
            s.tasks.update(tasks)
            s.instances.update(texts)
            for name, instance in instances.items():
                if instance.status in IN_FLIGHT:
                    s.in_flight.add(name)
                else:
                    s.in_flight.discard(name)
                for key in s.indexed.pop(name, ()):
                    s.waiting[key].discard(name)
                if instance.status is Status.UNSTARTED and instance.awaiting:
                    keys = s.indexed[name] = [(instance.task, trigger) for trigger in instance.awaiting]
                    for key in keys:
                        s.waiting.setdefault(key, set()).add(name)
        if self.pending_configs is not None:
            s.configs = self.pending_configs
        s.keys.update(self.pending_keys)
        if self.pending or self.pending_configs is not None:
            s.updated_at = time.time()


class MemoryStorage(StorageBackend):
    """``memory://``: sessions in a dict guarded by a lock (thread-safe)."""

    def __init__(self, url: str = "memory://", **_: object):
        super().__init__(url)
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.RLock()
        self._deadlines = SortedDeadlines()

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        self._deadlines.index_deadlines(uid, due)

    def due_deadlines(self, now: float, limit: int = 500) -> list[tuple[str, str, float]]:
        return self._deadlines.due_deadlines(now, limit)

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        self._deadlines.drop_deadline(uid, name, due)

    def process_local_reason(self) -> str | None:
        return (
            "triggers_storage is 'memory://', which lives in one process: a worker cannot see the sessions "
            "its producers fire. Use 'sqlite:////shared/path.db' (one machine) or 'redis://...'"
        )

    @contextmanager
    def transaction(self, uid: str, prefetch: Prefetch = (), cached: object = None) -> Iterator[SessionTxn]:
        with self._lock:
            session = self._sessions.get(uid) or _Session()
            txn = _MemoryTxn(uid, session)
            yield txn
            txn.commit()
            if uid not in self._sessions and (session.instances or session.triggers or session.configs):
                self._sessions[uid] = session

    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        with self._lock:
            session = self._sessions.get(uid)
            texts = dict(session.instances) if session else {}
        return {k: decode_instance(uid, k, v) for k, v in texts.items()}

    def sessions(self) -> list[str]:
        with self._lock:
            return sorted(self._sessions)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        with self._lock:
            self._sessions.pop(uid, None)

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        with self._lock:
            session = self._sessions.get(uid)
            if session is None or session.in_flight or session.updated_at >= cutoff:
                return False
            if not dry_run:
                del self._sessions[uid]
            return True
