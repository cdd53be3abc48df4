"""Public, named extension points of a session.

Subclass :class:`Hooks`, override what you need and register an instance on
the app (``app.triggers.add_hooks(MyHooks())``, in the module every worker
and producer imports, so that cascades on workers call it too). Each hook is
called after the operation committed, in the process that ran it, in the
order the hooks were added; a hook that raises propagates to the caller
(as the original framework's ``_post_*`` overrides did), and for a bulk
fire after every other session was settled.

The original framework's way, subclassing ``TriggerManager`` and overriding
``_post_fire``, ``_post_replay`` and ``_post_skip``, keeps working: the
manager calls those first, then the registered hooks. Code that only
listens can also connect to the Celery-style signals ``trigger_fired`` and
``instance_status_changed`` (:mod:`.signals`).

Three hooks serve observers (:mod:`celery_triggers.observe` is built on
them): :meth:`Hooks.instance_changed` sees the instance record of each
status change (its task and task id); :meth:`Hooks.firing` and
:meth:`Hooks.running` may return a context manager that the package enters
around a fire's messages and announcements, and around a worker's run of an
instance (a tracing span, a timer). Returning None costs nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from ..core.state import Instance, Status

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["Hooks", "around"]


class Hooks:
    """No-op hooks: override the ones you need."""

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        """``trigger`` (external, or a cascade) was committed in ``session``
        with ``kwargs``, and the instances it ``scheduled`` were sent."""

    def status_changed(self, session: TriggerManager, instance: str, old: Status | None, new: Status) -> None:
        """A committed status change (``old`` is None for a new instance)."""

    def instance_changed(self, session: TriggerManager, instance: Instance, old: Status | None, new: Status) -> None:
        """The same committed status change as :meth:`status_changed`, called
        right after it with the instance record as the operation left it:
        its ``task``, and ``metadata["task_id"]``, the Celery task id of its
        message once it is ``scheduled`` (its ``status`` may be past ``new``
        when one operation moved it twice, e.g. created then scheduled)."""

    def firing(
        self, session: TriggerManager, triggers: list[str], started: float
    ) -> AbstractContextManager[Any] | None:
        """An operation that fired ``triggers`` (an external fire, a cascade,
        or the events of a bulk fire) committed; ``started`` is when the
        operation began (``time.time()``). A context manager returned here
        is entered around what follows the commit: the status hooks, the
        messages of what it scheduled (so a span entered here is the parent
        of those messages) and :meth:`fired`."""
        return None

    def running(self, session_uid: str, instance: str, task: Any) -> AbstractContextManager[Any] | None:
        """A worker is about to run the message of ``task`` (the Celery task
        object, its ``request`` the message's) for ``instance``. A context
        manager returned here is entered around the run: its start, the
        task's body and its finish (and a cascade's fire, nested inside)."""
        return None

    def replayed(self, session: TriggerManager, instance: Instance) -> None:
        """``instance`` (now ``replayed``) was replayed; its clone is
        ``instance.metadata["replayed_by"]``."""

    def skipped(self, session: TriggerManager, instance: Instance, cascade: bool) -> None:
        """``instance`` was skipped (after the cascade's :meth:`fired` when
        ``cascade`` is true)."""


@contextmanager
def around(contexts: Sequence[AbstractContextManager[Any] | None]) -> Iterator[None]:
    """Enter the context managers hooks returned (None: nothing), in
    order, and leave them in reverse."""
    entered = [c for c in contexts if c is not None]
    if not entered:
        yield
        return
    with ExitStack() as stack:
        for context in entered:
            stack.enter_context(context)
        yield
