"""Moved: the threading runner is a built-in runner,
:mod:`celery_triggers.producer.runners.threaded` (this name is kept for imports
written against 0.1.0)."""

from __future__ import annotations

from ..producer.runners.threaded import ThreadingTaskRunner

__all__ = ["ThreadingTaskRunner"]
