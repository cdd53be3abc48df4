"""Celery-style signals for code that does not subclass the manager.

Receivers are called after the storage commit. As with all Celery signals,
a receiver that raises is logged and does not break the caller.
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

__all__ = ["instance_status_changed", "trigger_fired"]

#: Sent after a trigger (external or cascade) was committed.
#: Arguments: ``sender`` (the manager), ``session_uid``, ``trigger``,
#: ``kwargs``, ``scheduled`` (names of instances it scheduled).
trigger_fired = Signal(name="trigger_fired")

#: Sent for every committed status change of an instance.
#: Arguments: ``sender`` (the manager), ``session_uid``, ``instance``,
#: ``old`` (None for a new instance), ``new``.
instance_status_changed = Signal(name="instance_status_changed")
