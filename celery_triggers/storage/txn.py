"""One transaction on one session: what every backend implements.

:class:`SessionTxn` is the handful of primitives a backend writes (load the
records an operation needs, write the records it changed, read and write
the session's own configs) and what the base does around them: JSON
decoding into records, a clear :class:`CorruptSession` for a record that
is not what it should be, and the read-only guard. :func:`check_uid` is the
rule every backend applies to a session UID before touching storage.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from typing import Any

from ..core.data import MAX_UID_LENGTH, check_text, dumps, loads
from ..core.engine import Needs
from ..core.errors import CorruptSession, InvalidSession, StorageError
from ..core.state import Changes, Instance, Snapshot, TaskRecord, TriggerRecord
from .records import decode_instance

__all__ = ["Prefetch", "Raw", "SessionTxn", "check_uid"]

#: What a transaction may read up front: instance names, and (task, trigger)
#: pairs of the waiting instances a fire reads (see ``Needs.waiting``).
Prefetch = Collection[str | tuple[str, str]]
#: A stored record: JSON text, or a dict a backend already decoded.
Raw = str | bytes | dict[str, Any]


def check_uid(uid: Any) -> str:
    """``uid`` if storage can hold it, else :class:`InvalidSession`. Control
    characters pass here (a session stored before they were refused stays
    readable); a fire refuses them (``TriggerManager``)."""
    problem = check_text(uid, what="a session UID", limit=MAX_UID_LENGTH, stored=True)
    if problem is not None:
        raise InvalidSession(problem)
    return str(uid)


class SessionTxn(abc.ABC):
    """One transaction on one session. Reads see a consistent state; writes
    become visible together at commit, or not at all."""

    def __init__(self, uid: str):
        self.uid = uid
        #: Set by a backend after a successful commit: what it needs to run the
        #: next transaction of this session without reading first (opaque).
        self.after_commit: Any = None
        #: A read-only transaction (:meth:`StorageBackend.read`) refuses writes.
        self.read_only = False
        #: The time the session's records are stored relative to (see
        #: ``records``), for a backend that stores them so.
        self.record_base: int | None = None

    # -- primitives ---------------------------------------------------------
    @abc.abstractmethod
    def load_raw(self, needs: Needs) -> tuple[Mapping[str, Raw], Mapping[str, Raw], Mapping[str, Raw]]:
        """The needed trigger, task and instance records, each as JSON text
        or as an already decoded dict.

        Instances: those named in ``needs.instances`` plus, for every
        ``(task, trigger)`` in ``needs.waiting``, the task's unstarted
        instances that await that trigger.
        """

    @abc.abstractmethod
    def write_raw(
        self, triggers: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]], instances: dict[str, Instance]
    ) -> None:
        """Write records (plain dicts; instances as objects, for indexes).

        An unstarted instance is indexed under each trigger it ``awaits``
        (what ``Needs.waiting`` reads); any other instance under none. An
        instance being rewritten was loaded in the same transaction (the
        engine only changes what it read), so a backend may rely on what it
        loaded to update its index.

        Must refuse (``TypeError``) a value that is not JSON before anything
        is committed."""

    @abc.abstractmethod
    def read_configs_raw(self) -> str | None:
        """The session's own task configs (JSON text), if any."""

    @abc.abstractmethod
    def write_configs_raw(self, text: str) -> None: ...

    def read_key_raw(self, key: str) -> str | None:
        """What the fire that used idempotency ``key`` in this session stored
        (JSON text), or None if no fire used it yet. A backend that checks
        keys at commit (Redis) answers from what it learned so far, and its
        commit refuses to record a key that is used already."""
        raise StorageError(f"{type(self).__name__} does not support idempotency keys")

    def write_key_raw(self, key: str, text: str) -> None:
        """Record ``key`` as used, with ``text``, in this transaction's commit."""
        raise StorageError(f"{type(self).__name__} does not support idempotency keys")

    # -- shared logic -------------------------------------------------------
    def used_key(self, key: str) -> list[str] | None:
        """The instance names the fire with idempotency ``key`` scheduled, or
        None if no fire of this session used ``key``."""
        text = self.read_key_raw(key)
        if text is None:
            return None
        names = self._decode("idempotency key", key, text)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CorruptSession(f"session {self.uid!r}: stored idempotency key {key!r} is not a list of names")
        return names

    def record_key(self, key: str, names: list[str]) -> None:
        """Record that the fire with ``key`` scheduled ``names``."""
        self._check_writable()
        self.write_key_raw(key, dumps(names))

    def _decode(self, kind: str, key: str, text: Raw) -> Any:
        if isinstance(text, dict):
            return text
        try:
            return loads(text)
        except ValueError as exc:
            raise CorruptSession(
                f"session {self.uid!r}: stored {kind} record {key!r} is not valid JSON ({exc})"
            ) from None

    def load(self, needs: Needs) -> Snapshot:
        triggers, tasks, instances = self.load_raw(needs)
        try:
            return Snapshot(
                triggers={k: TriggerRecord.from_dict(self._decode("trigger", k, v)) for k, v in triggers.items()},
                tasks={k: TaskRecord.from_dict(self._decode("task", k, v)) for k, v in tasks.items()},
                instances={k: decode_instance(self.uid, k, v, self.record_base) for k, v in instances.items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CorruptSession):
                raise
            raise CorruptSession(f"session {self.uid!r}: a stored record is malformed ({exc!r})") from None

    def _check_writable(self) -> None:
        if self.read_only:
            raise RuntimeError(f"session {self.uid!r}: a read-only transaction cannot write")

    def write(self, changes: Changes) -> None:
        if changes.empty:
            return
        self._check_writable()
        self.write_raw(
            {k: v.to_dict() for k, v in changes.triggers.items()},
            {k: v.to_dict() for k, v in changes.tasks.items()},
            changes.instances,
        )

    def read_configs(self) -> dict[str, Any]:
        text = self.read_configs_raw()
        if not text:
            return {}
        data = self._decode("configuration", "configs", text)
        if not isinstance(data, dict):
            raise CorruptSession(f"session {self.uid!r}: stored configuration is not a JSON object")
        return data

    def write_configs(self, configs: dict[str, Any]) -> None:
        self._check_writable()
        self.write_configs_raw(dumps(configs))
