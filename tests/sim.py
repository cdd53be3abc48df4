"""A tiny in-memory driver of the pure engine, for engine and property tests.

It keeps a full snapshot and applies each operation's changes to it, the way
a storage backend would, without any storage or Celery.
"""

from __future__ import annotations

from typing import Any

from celery_triggers.core import engine
from celery_triggers.core.config import TaskConfig, parse_configs
from celery_triggers.core.state import Changes, Instance, Snapshot, Status


class Sim:
    def __init__(self, configs: dict[str, Any] | dict[str, TaskConfig]):
        typed = all(isinstance(v, TaskConfig) for v in configs.values())
        self.configs: dict[str, TaskConfig] = dict(configs) if typed else parse_configs(configs)
        self.state = Snapshot()
        self.now = 0.0
        self.ready: list[str] = []  # every instance ever made ready, in order

    def _apply(self, changes: Changes) -> Changes:
        self.state.triggers.update(changes.triggers)
        self.state.tasks.update(changes.tasks)
        self.state.instances.update(changes.instances)
        self.ready.extend(changes.ready)
        self.now += 1
        return changes

    def fire(self, trigger: str, kwargs: dict[str, Any] | None = None) -> list[str]:
        return self._apply(engine.fire(self.state, self.configs, trigger, kwargs or {}, self.now)).ready

    def start(self, name: str) -> None:
        self._apply(engine.start(self.state, name, self.now))

    def finish(self, name: str, result: Any = None) -> list[str]:
        return self._apply(engine.finish(self.state, self.configs, name, result, self.now)).ready

    def fail(self, name: str) -> None:
        self._apply(engine.fail(self.state, name, {"exc_type": "ValueError"}, self.now))

    def replay(self, name: str, kwargs: dict[str, Any] | None = None) -> list[str]:
        return self._apply(engine.replay(self.state, self.configs, name, kwargs, self.now)).ready

    def skip(self, name: str, cascade: bool = False, result: Any = None) -> list[str]:
        return self._apply(engine.skip(self.state, self.configs, name, cascade, result, self.now)).ready

    def retry(self, name: str) -> list[str]:
        return self._apply(engine.retry(self.state, self.configs, name, {}, None, None, self.now)).ready

    def skip_running(self, name: str, cascade: bool = False, result: Any = None) -> list[str]:
        changes = engine.skip(self.state, self.configs, name, cascade, result, self.now, own=True)
        return self._apply(changes).ready

    def set_status(self, name: str, status: Status, cascade: bool = False) -> list[str]:
        changes = engine.set_status(self.state, self.configs, name, status, None, cascade, {}, self.now)
        return self._apply(changes).ready

    def run_all(self) -> None:
        """Run every scheduled instance to success (returning None), cascading."""
        while True:
            pending = [i for i in self.state.instances.values() if i.status is Status.SCHEDULED]
            if not pending:
                return
            for instance in pending:
                self.start(instance.name)
                self.finish(instance.name)

    def __getitem__(self, name: str) -> Instance:
        return self.state.instances[name]

    def of(self, task: str) -> list[Instance]:
        return sorted((i for i in self.state.instances.values() if i.task == task), key=lambda i: i.number)

    def statuses(self) -> dict[str, str]:
        return {n: i.status.value for n, i in sorted(self.state.instances.items())}
