"""``ThreadingTaskRunner``: run trigger tasks in threads, as a worker pool
would, and wait for all of them (cascades included) with ``join_all``."""

from __future__ import annotations

import threading
from typing import Any

from ...core.dispatch import Dispatch
from .base import TaskRunner, message_kwargs

__all__ = ["ThreadingTaskRunner"]


class _Pending:
    """Trigger tasks running in threads in this process (all runners): what
    the original framework's class-level ``ThreadingTaskRunner.join_all()``
    waits for."""

    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Condition()


_PENDING = _Pending()


class _JoinAll:
    """``join_all`` works on the class, as in the original framework
    (``ThreadingTaskRunner.join_all()``), and on a runner."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        def join_all(timeout: float = 30.0) -> None:
            """Wait until every task started in threads, and every task they
            cascaded into, has ended. Raises ``TimeoutError`` after
            ``timeout`` seconds."""
            with _PENDING.done:
                if not _PENDING.done.wait_for(lambda: _PENDING.count == 0, timeout):
                    raise TimeoutError(f"{_PENDING.count} trigger task(s) still running after {timeout}s")

        return join_all


class ThreadingTaskRunner(TaskRunner):
    """Select it with ``triggers_runner = "threading"`` (or ``using``)."""

    name = "threading"
    join_all = _JoinAll()

    def __init__(self, app: Any):
        super().__init__(app)
        self._pending = _PENDING
        self._done = _PENDING.done

    def dispatch(self, items: list[Dispatch]) -> None:
        self.check_registered(items)
        for item in items:
            with self._done:
                self._pending.count += 1
            threading.Thread(target=self._run, args=(item,), name=f"trigger-{item.instance.name}", daemon=True).start()

    def _run(self, item: Dispatch) -> None:
        try:
            task = self.task_for(item)
            task.apply(kwargs=message_kwargs(task), headers=item.headers, task_id=item.task_id, throw=False)
        finally:
            with self._done:
                self._pending.count -= 1
                self._done.notify_all()
