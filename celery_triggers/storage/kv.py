"""Shared logic of the key-value backends (Redis, Django cache).

A session is three things in a key-value store:

* one **state** value (JSON): the session's own configs, the fired-trigger
  records and the task records. Its size depends on the configuration,
  never on how many instances the session has.
* one **record** per instance (JSON), written only when that instance
  changes.
* an **index** of the unstarted instances by each trigger they still
  await (a sorted set on Redis, buckets of names on the Django cache).

A fire reads the state and the instances that await the fired trigger, and
writes the state plus the instances it changed: its cost does not depend on
how many instances the session ran or how many wait for other triggers.
The subclass supplies the atomicity (Redis: a version compare-and-set;
Django cache: a lock) and the primitives: read the state, read instance
records, read the index, commit.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..core.data import dumps, loads
from ..core.engine import Needs
from ..core.errors import CorruptSession
from ..core.state import IN_FLIGHT, Instance, Snapshot, Status, split_instance_name
from .records import FORMAT, check_format, decode_instance, encode_instance, to_ms
from .summaries import KEY as SUMMARY
from .summaries import new_kept, stamp_kept, track
from .txn import Raw, SessionTxn

__all__ = [
    "IndexEntry",
    "KVTxn",
    "instance_names",
    "iter_records",
    "new_state",
    "parse_state",
    "session_digest",
    "session_instances",
    "uid_of",
]

Fetch = Callable[[list[str]], dict[str, Any]]
#: (task, trigger) pairs -> the records of the unstarted instances awaiting them.
FetchWaiting = Callable[[list[tuple[str, str]]], dict[str, Any]]
#: One index entry: (task, trigger, instance name).
IndexEntry = tuple[str, str, str]


def session_digest(uid: str) -> str:
    """A short, key-safe stand-in for a session UID of any length or charset."""
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()[:32]


def new_state(uid: str) -> dict[str, Any]:
    now = time.time()
    return {
        "base": to_ms(now),
        "uid": uid,
        "configs": {},
        "triggers": {},
        "tasks": {},
        "created_at": now,
        "updated_at": now,
        SUMMARY: new_kept(),
    }


def parse_state(uid: str, text: str | bytes | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        state = loads(text)
    except ValueError as exc:
        raise CorruptSession(f"session {uid!r}: stored state is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(state.get(k), dict) for k in ("triggers", "tasks", "configs")):
        raise CorruptSession(f"session {uid!r}: stored state is not a celery-triggers session")
    check_format(uid, state.get("format"))
    base = state.get("base")
    if base is not None and (not isinstance(base, int) or isinstance(base, bool)):
        raise CorruptSession(f"session {uid!r}: stored state's start time is not an integer")
    return state


_UID = re.compile(r'"uid":("(?:[^"\\]|\\.)*")')


def uid_of(text: str | bytes) -> str | None:
    """The session UID a stored state names, read even when the rest of
    the state is corrupt (None if it cannot be read)."""
    match = _UID.search(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)
    if match is None:
        return None
    try:
        uid = loads(match.group(1))
    except ValueError:
        return None
    return uid if isinstance(uid, str) else None


def instance_names(state: dict[str, Any]) -> list[str]:
    """Every instance name the session has (tasks number instances densely)."""
    names: list[str] = []
    for task, record in state["tasks"].items():
        names.extend(f"{task}#{n}" for n in range(int(record.get("next_number", 0))))
    return names


def iter_records(
    uid: str, state: dict[str, Any], fetch: Callable[[list[str]], Sequence[Any]], batch: int
) -> Iterator[list[Instance]]:
    """A session's instances in the order of ``manager.instances`` (task
    name, then number), ``batch`` at a time: names from the state's task
    records, records through ``fetch`` (names -> records, None for a
    missing one)."""
    base = state.get("base")
    names: list[str] = []
    for task in sorted(state["tasks"]):
        for number in range(int(state["tasks"][task].get("next_number", 0))):
            names.append(f"{task}#{number}")
            if len(names) >= batch:
                yield _decoded(uid, names, fetch(names), base)
                names = []
    if names:
        yield _decoded(uid, names, fetch(names), base)


def _decoded(uid: str, names: list[str], records: Sequence[Any], base: int | None) -> list[Instance]:
    return [decode_instance(uid, n, r, base) for n, r in zip(names, records, strict=True) if r is not None]


class KVTxn(SessionTxn):
    """A transaction over a parsed state, lazily fetched instance records
    and the index of waiting instances."""

    def __init__(
        self,
        uid: str,
        state: dict[str, Any] | None,
        fetch: Fetch,
        fetch_waiting: FetchWaiting,
        used_keys: Mapping[str, str] | None = None,
    ):
        super().__init__(uid)
        #: Idempotency keys: in the state (None), or, on a backend that keeps
        #: them apart and checks them at commit (Redis), those known used so
        #: far; then the keys this transaction records are in ``key_writes``.
        self._used_keys = used_keys
        self.key_writes: dict[str, str] = {}
        self.is_new = state is None
        self.state = state if state is not None else new_state(uid)
        self._fetch = fetch
        self._fetch_waiting = fetch_waiting
        self.state_dirty = False
        self.instance_writes: dict[str, str] = {}
        self.index_adds: set[IndexEntry] = set()
        self.index_removes: set[IndexEntry] = set()
        #: instance -> the triggers it is indexed under, and its status, as stored.
        self._indexed: dict[str, list[str]] = {}
        self._old_status: dict[str, Status] = {}
        #: Records' creation times are relative to this (ms; see ``records``).
        self.record_base = self.state.get("base")

    @property
    def changed(self) -> bool:
        return self.state_dirty or bool(
            self.instance_writes or self.index_adds or self.index_removes or self.key_writes
        )

    def read_key_raw(self, key: str) -> str | None:
        if key in self.key_writes:
            return self.key_writes[key]
        if self._used_keys is not None:
            return self._used_keys.get(key)
        found = (self.state.get("keys") or {}).get(key)
        return None if found is None else dumps(found)

    def write_key_raw(self, key: str, text: str) -> None:
        if self._used_keys is not None:
            self.key_writes[key] = text
            return
        self.state.setdefault("keys", {})[key] = loads(text)
        self.state_dirty = True

    def state_text(self) -> str:
        self.state["updated_at"] = time.time()
        stamp_kept(self.state)
        self.state["format"] = FORMAT  # whatever wrote it before, this release has written to it
        return dumps(self.state)

    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        # Decoded dicts straight from the state: the engine copies what it changes.
        s = self.state
        wanted = s["triggers"] if needs.all_triggers else needs.triggers
        triggers = {k: s["triggers"][k] for k in wanted if k in s["triggers"]}
        tasks = {k: s["tasks"][k] for k in needs.tasks if k in s["tasks"]}
        instances: dict[str, Raw] = {}
        if needs.instances:
            instances.update({k: v for k, v in self._fetch(sorted(needs.instances)).items() if v is not None})
        # A task with no instance yet has none waiting: no index read.
        pairs = sorted(
            (task, trigger)
            for task, trigger in needs.waiting
            if int((s["tasks"].get(task) or {}).get("next_number", 0)) > 0
        )
        if pairs:
            instances.update({k: v for k, v in self._fetch_waiting(pairs).items() if v is not None})
        return triggers, tasks, instances

    def load(self, needs: Needs) -> Snapshot:
        snapshot = super().load(needs)
        for name, instance in snapshot.instances.items():
            indexed = instance.awaiting if instance.status is Status.UNSTARTED else []
            self._indexed.setdefault(name, list(indexed))
            self._old_status.setdefault(name, instance.status)
        return snapshot

    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        s = self.state  # a non-JSON value fails when the state is encoded, before any write
        s["triggers"].update(triggers)
        s["tasks"].update(tasks)
        self.state_dirty |= bool(triggers or tasks)
        if instances and self.record_base is None:  # a session an earlier release started
            created = s.get("created_at")
            self.record_base = s["base"] = to_ms(created) if isinstance(created, (int, float)) else to_ms(time.time())
            self.state_dirty = True
        delta = 0
        kept = s.get(SUMMARY)
        if not (isinstance(kept, dict) and isinstance(kept.get("counts"), dict)):
            kept = None
        before = (dict(kept["counts"]), kept.get("last")) if kept is not None else None
        for name, instance in instances.items():
            # refuses non-JSON before any commit
            self.instance_writes[name] = encode_instance(instance, self.record_base)
            delta += (instance.status in IN_FLIGHT) - (self._old_status.get(name) in IN_FLIGHT)
            if kept is not None:  # the counts and last activity a listing reads (see .summaries)
                track(kept, self._old_status.get(name), instance)
            self._old_status[name] = instance.status
            old = set(self._indexed.get(name, ()))
            new = set(instance.awaiting) if instance.status is Status.UNSTARTED else set()
            for trigger in old - new:
                entry = (instance.task, trigger, name)
                self.index_adds.discard(entry)
                self.index_removes.add(entry)
            for trigger in new - old:
                entry = (instance.task, trigger, name)
                self.index_removes.discard(entry)
                self.index_adds.add(entry)
            self._indexed[name] = sorted(new)
        if kept is not None and before != (kept["counts"], kept.get("last")):
            self.state_dirty = True
        if delta:  # how many instances are scheduled or running: what keeps a session from expiring
            s["in_flight"] = max(0, int(s.get("in_flight") or 0) + delta)
            self.state_dirty = True

    def read_configs_raw(self) -> str | None:
        configs = self.state.get("configs")
        return dumps(configs) if configs else None

    def write_configs_raw(self, text: str) -> None:
        self.state["configs"] = loads(text)
        self.state_dirty = True


def session_instances(uid: str, records: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Instance]:
    """Every instance of a session from its records (``None`` values are
    skipped) and its state, by name."""
    base = state.get("base")
    result = {name: decode_instance(uid, name, raw, base) for name, raw in records.items() if raw is not None}
    return dict(sorted(result.items(), key=lambda kv: split_instance_name(kv[0])))
