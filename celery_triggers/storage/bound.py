"""A backend bound to one session: :class:`SessionStorage`, what a
:class:`~celery_triggers.session.manager.TriggerManager` takes. It keeps
what its previous transaction left (``after_commit``), so the worker's
finish may resume from its start in one round trip."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.state import Instance
from .txn import Prefetch, SessionTxn, check_uid

if TYPE_CHECKING:
    from .base import StorageBackend

__all__ = ["SessionStorage"]

R = TypeVar("R")


class SessionStorage:
    """A backend bound to one session UID: what a :class:`TriggerManager` takes."""

    def __init__(self, backend: StorageBackend, uid: str):
        self.backend = backend
        self.uid = check_uid(uid)
        self._after_commit: Any = None

    def atomic(self, operation: Callable[[SessionTxn], R], prefetch: Prefetch = (), *, resume: bool = False) -> R:
        """Run ``operation`` atomically. With ``resume``, the backend may start
        from what this object's previous transaction left (see
        :meth:`StorageBackend.transaction`): the worker's finish after its
        start, in one round trip on Redis when nothing else changed."""
        result, self._after_commit = self.backend.run(
            self.uid, operation, prefetch, self._after_commit if resume else None
        )
        return result

    def read(self, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        """Run a read-only ``operation`` (see :meth:`StorageBackend.read`)."""
        return self.backend.read(self.uid, operation, prefetch)

    def start(
        self, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any]]:
        """:meth:`StorageBackend.start` on this session; the finish that
        follows may resume from it."""
        before, after, configs, self._after_commit = self.backend.start(
            self.uid, name, token, now, track=track, metadata=metadata
        )
        return before, after, configs

    @property
    def instances(self) -> dict[str, Instance]:
        """Every instance of the session, by name (a fresh read)."""
        return self.backend.instances(self.uid)

    def instance(self, name: str) -> Instance:
        return self.backend.instance(self.uid, name)

    def delete(self) -> None:
        self.backend.delete_session(self.uid)

    def __repr__(self) -> str:
        return f"<SessionStorage {self.uid!r} on {self.backend!r}>"
