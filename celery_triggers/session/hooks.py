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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.state import Instance, Status

if TYPE_CHECKING:
    from .manager import TriggerManager

__all__ = ["Hooks"]


class Hooks:
    """No-op hooks: override the ones you need."""

    def fired(self, session: TriggerManager, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None:
        """``trigger`` (external, or a cascade) was committed in ``session``
        with ``kwargs``, and the instances it ``scheduled`` were sent."""

    def status_changed(self, session: TriggerManager, instance: str, old: Status | None, new: Status) -> None:
        """A committed status change (``old`` is None for a new instance)."""

    def replayed(self, session: TriggerManager, instance: Instance) -> None:
        """``instance`` (now ``replayed``) was replayed; its clone is
        ``instance.metadata["replayed_by"]``."""

    def skipped(self, session: TriggerManager, instance: Instance, cascade: bool) -> None:
        """``instance`` was skipped (after the cascade's :meth:`fired` when
        ``cascade`` is true)."""
