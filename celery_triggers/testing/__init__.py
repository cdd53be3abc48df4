"""Test your trigger tasks: assertions (unittest mixin and plain functions),
an isolated eager app, a threading runner and ``wait_until_idle`` for real
workers. The pytest plugin (``celery_triggers.testing.pytest_plugin``) is
registered through the ``pytest11`` entry point.

An edge: may import every layer below the edges, no other edge; nothing in
the package imports it but :mod:`celery_triggers.compat`, which re-exports
the original framework's ``TriggerManagerTestCaseMixin``.
"""

from __future__ import annotations

from .apps import eager_triggers, make_test_app
from .assertions import (
    TriggerManagerTestCaseMixin,
    assert_instance_abandoned,
    assert_instance_failed,
    assert_instance_finished,
    assert_instance_missing,
    assert_instance_replayed,
    assert_instance_skipped,
    assert_instance_unstarted,
    assert_unresolved_instances,
    assert_unresolved_tasks,
    describe_instance,
)
from .clock import DeadlineClock, frozen_clock
from .threaded import ThreadingTaskRunner
from .wait import wait_until_idle

__all__ = [
    "DeadlineClock",
    "ThreadingTaskRunner",
    "TriggerManagerTestCaseMixin",
    "assert_instance_abandoned",
    "assert_instance_failed",
    "assert_instance_finished",
    "assert_instance_missing",
    "assert_instance_replayed",
    "assert_instance_skipped",
    "assert_instance_unstarted",
    "assert_unresolved_instances",
    "assert_unresolved_tasks",
    "describe_instance",
    "eager_triggers",
    "frozen_clock",
    "make_test_app",
    "wait_until_idle",
]
