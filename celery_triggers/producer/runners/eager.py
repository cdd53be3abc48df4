"""In-process runner for tests: runs tasks synchronously, cascades included.

It keeps the order a real worker would see: a ``fire`` commits and runs its
``_post_fire`` hook before the tasks it scheduled run, and their cascades run
after them, breadth first. Tasks run through ``Task.apply``, so Celery's
signals (and so the status handlers) behave as on a worker. A failing task
marks its instance ``failed``; ``fire`` does not re-raise it.
"""

from __future__ import annotations

import threading
from collections import deque

from celery import Celery
from celery.exceptions import NotRegistered

from ...core.dispatch import Dispatch
from .base import TaskRunner, message_kwargs

__all__ = ["EagerTaskRunner"]


class EagerTaskRunner(TaskRunner):
    name = "eager"
    runs_in_caller = True

    def __init__(self, app: Celery):
        super().__init__(app)
        self._local = threading.local()

    def _queue(self) -> deque[Dispatch]:
        queue: deque[Dispatch] | None = getattr(self._local, "queue", None)
        if queue is None:
            queue = self._local.queue = deque()
        return queue

    def dispatch(self, items: list[Dispatch]) -> None:
        self.check_registered(items)
        self._queue().extend(items)

    def drain(self) -> None:
        if getattr(self._local, "draining", False):
            return  # a task fired from inside a task: the outer loop runs it
        self._local.draining = True
        try:
            queue = self._queue()
            while queue:
                item = queue.popleft()
                try:
                    task = self.task_for(item)
                except NotRegistered:  # pragma: no cover - checked in dispatch
                    continue
                task.apply(kwargs=message_kwargs(task), headers=item.headers, task_id=item.task_id, throw=False)
        finally:
            self._local.draining = False
