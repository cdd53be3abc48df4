"""Shared logic of the key-value backends (Redis, Django cache).

A session is two things in a key-value store:

* one **state** value (JSON): the session's own configs, the fired-trigger
  records, the task records and the *unstarted* instances. Its size depends
  on the configuration and on how many instances wait for triggers, never on
  how many instances the session ran.
* one **record** per started instance (JSON), written only when that
  instance changes.

A fire reads the state (and no instance record), and writes the state plus
the instances it scheduled: constant work however long the session is. The
subclass supplies the atomicity (Redis: WATCH/MULTI; Django cache: a lock)
and three primitives: read the state, read instance records, commit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._json import dumps, loads
from ..engine import Needs
from ..errors import CorruptSession
from ..state import Instance, Status, split_instance_name
from .base import Raw, SessionTxn, decode_instance

__all__ = ["KVTxn", "instance_names", "new_state", "parse_state", "session_digest", "session_instances"]

Fetch = Callable[[list[str]], dict[str, Any]]


def session_digest(uid: str) -> str:
    """A short, key-safe stand-in for a session UID of any length or charset."""
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()[:32]


def new_state(uid: str) -> dict[str, Any]:
    now = time.time()
    return {
        "uid": uid,
        "configs": {},
        "triggers": {},
        "tasks": {},
        "unstarted": {},
        "created_at": now,
        "updated_at": now,
    }


def parse_state(uid: str, text: str | bytes | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        state = loads(text)
    except ValueError as exc:
        raise CorruptSession(f"session {uid!r}: stored state is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not all(
        isinstance(state.get(k), dict) for k in ("triggers", "tasks", "unstarted", "configs")
    ):
        raise CorruptSession(f"session {uid!r}: stored state is not a celery-triggers session")
    return state


def instance_names(state: dict[str, Any]) -> list[str]:
    """Every instance name the session has (tasks number instances densely)."""
    names: list[str] = []
    for task, record in state["tasks"].items():
        names.extend(f"{task}#{n}" for n in range(int(record.get("next_number", 0))))
    return names


class KVTxn(SessionTxn):
    """A transaction over a parsed state and lazily fetched instance records."""

    def __init__(self, uid: str, state: dict[str, Any] | None, fetch: Fetch):
        super().__init__(uid)
        self.is_new = state is None
        self.state = state if state is not None else new_state(uid)
        self._fetch = fetch
        self.state_dirty = False
        self.instance_writes: dict[str, str] = {}
        self.instance_deletes: set[str] = set()

    @property
    def changed(self) -> bool:
        return self.state_dirty or bool(self.instance_writes or self.instance_deletes)

    def state_text(self) -> str:
        self.state["updated_at"] = time.time()
        return dumps(self.state)

    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        # Decoded dicts straight from the state: the engine copies what it changes.
        s = self.state
        wanted = s["triggers"] if needs.all_triggers else needs.triggers
        triggers = {k: s["triggers"][k] for k in wanted if k in s["triggers"]}
        tasks = {k: s["tasks"][k] for k in needs.tasks if k in s["tasks"]}
        instances: dict[str, Raw] = {
            name: data for name, data in s["unstarted"].items() if data.get("task") in needs.tasks
        }
        wanted = []
        for name in needs.instances:
            if name in s["unstarted"]:
                instances[name] = s["unstarted"][name]
            else:
                wanted.append(name)
        if wanted:
            instances.update({k: v for k, v in self._fetch(sorted(wanted)).items() if v is not None})
        return triggers, tasks, instances

    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        s = self.state  # a non-JSON value fails when the state is encoded, before any write
        s["triggers"].update(triggers)
        s["tasks"].update(tasks)
        self.state_dirty |= bool(triggers or tasks)
        for name, instance in instances.items():
            data = instance.to_dict()
            text = dumps(data)  # refuses non-JSON before anything is committed
            if instance.status is Status.UNSTARTED:
                s["unstarted"][name] = data
                self.instance_deletes.add(name)
                self.instance_writes.pop(name, None)
                self.state_dirty = True
            else:
                if s["unstarted"].pop(name, None) is not None:
                    self.state_dirty = True
                self.instance_writes[name] = text
                self.instance_deletes.discard(name)

    def read_configs_raw(self) -> str | None:
        configs = self.state.get("configs")
        return dumps(configs) if configs else None

    def write_configs_raw(self, text: str) -> None:
        self.state["configs"] = loads(text)
        self.state_dirty = True


def session_instances(uid: str, state: dict[str, Any], records: Mapping[str, Any]) -> dict[str, Instance]:
    """Every instance of a session: the unstarted ones kept in its state plus
    the started ones' records (``None`` values are skipped), by name."""
    result = {name: Instance.from_dict(data) for name, data in state["unstarted"].items()}
    for name, raw in records.items():
        if raw is not None and name not in result:
            result[name] = decode_instance(uid, name, raw)
    return dict(sorted(result.items(), key=lambda kv: split_instance_name(kv[0])))
