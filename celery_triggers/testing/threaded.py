"""``ThreadingTaskRunner``: run trigger tasks in threads, as a worker pool
would, and wait for all of them (cascades included) with ``join_all``."""

from __future__ import annotations

import threading
from typing import Any

from ..dispatch import Dispatch
from ..runners.base import TaskRunner, message_kwargs

__all__ = ["ThreadingTaskRunner"]


class ThreadingTaskRunner(TaskRunner):
    """Select it with ``triggers_runner = "threading"`` (or ``using``)."""

    name = "threading"

    def __init__(self, app: Any):
        super().__init__(app)
        self._pending = 0
        self._done = threading.Condition()

    def dispatch(self, items: list[Dispatch]) -> None:
        self.check_registered(items)
        for item in items:
            with self._done:
                self._pending += 1
            threading.Thread(target=self._run, args=(item,), name=f"trigger-{item.instance.name}", daemon=True).start()

    def _run(self, item: Dispatch) -> None:
        try:
            task = self.app.tasks[item.config.run]
            task.apply(kwargs=message_kwargs(task), headers=item.headers, task_id=item.task_id, throw=False)
        finally:
            with self._done:
                self._pending -= 1
                self._done.notify_all()

    def join_all(self, timeout: float = 30.0) -> None:
        """Wait until every task it started, and every task they cascaded
        into, has ended. Raises ``TimeoutError`` after ``timeout`` seconds."""
        with self._done:
            if not self._done.wait_for(lambda: self._pending == 0, timeout):
                raise TimeoutError(f"{self._pending} trigger task(s) still running after {timeout}s")
