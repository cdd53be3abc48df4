"""The deadline index of ``django-db://``: the ``Deadline`` table, indexed
by due time (see ``celery_triggers.storage.deadlines``)
entries go with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...storage.deadlines import DeadlineEntry
from .models import Deadline

__all__ = ["DBDeadlines"]


class DBDeadlines:
    """Mixed into :class:`~.storage.DjangoDBStorage` (its alias and error handling)."""

    if TYPE_CHECKING:  # the storage's own
        alias: str

        def _guarded(self, uid: str | None, query: Callable[[], Any]) -> Any: ...

    def index_deadlines(self, uid: str, due: Mapping[str, float]) -> None:
        def query() -> None:
            rows = [Deadline(session_uid=uid, name=name, due=float(when)) for name, when in due.items()]
            Deadline.objects.using(self.alias).bulk_create(
                rows, update_conflicts=True, unique_fields=("session_uid", "name"), update_fields=("due",)
            )

        self._guarded(uid, query)

    def due_deadlines(self, now: float, limit: int = 500) -> list[DeadlineEntry]:
        def query() -> list[DeadlineEntry]:
            rows = (
                Deadline.objects.using(self.alias)
                .filter(due__lte=now)
                .order_by("due")
                .values_list("session_uid", "name", "due")[:limit]
            )
            return [(str(uid), str(name), float(when)) for uid, name, when in rows]

        result: list[DeadlineEntry] = self._guarded(None, query)
        return result

    def drop_deadline(self, uid: str, name: str, due: float) -> None:
        self._guarded(
            uid,
            lambda: Deadline.objects.using(self.alias).filter(session_uid=uid, name=name, due=due).delete(),
        )
