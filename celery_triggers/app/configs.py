"""The app-wide trigger task configs: declared by ``@trigger_task`` and
``configure``, indexed by trigger, overlaid with a session's own (parsed
once per distinct session configuration)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.config import Configuration, TaskConfig, parse_configs
from ..core.data import dumps
from ..core.errors import ConfigurationError, TriggersError
from ..producer.runners import resolve_runner_class

__all__ = ["ConfigRegistry"]


class ConfigRegistry:
    """The task configs of one app (``app.triggers`` delegates to it)."""

    def __init__(self) -> None:
        self._configs: dict[str, TaskConfig] = {}
        #: Celery task name -> (the trigger name a task object was taken to
        #: stand for before it was a trigger task, the config that used it).
        self._guessed: dict[str, tuple[str, str]] = {}
        self._configuration = Configuration()
        self._session_cache: dict[str, Configuration] = {}
        self._lock = threading.RLock()

    def check_runners(self, configs: Iterable[TaskConfig]) -> None:
        for config in configs:
            if config.using is not None:
                try:
                    resolve_runner_class(config.using)
                except TriggersError as exc:
                    raise ConfigurationError(str(exc), task=config.name, directive="using") from None

    def register(self, config: TaskConfig) -> None:
        """Add one app-wide task config (the decorator calls this)."""
        self.check_runners([config])
        with self._lock:
            guessed = self._guessed.get(config.run)
            if guessed is not None and guessed[0] != config.name:
                raise ConfigurationError(
                    f"{guessed[1]!r} was declared with the task object {config.run!r} before it became a trigger "
                    f"task, so it waits for {guessed[0]!r}; this one is named {config.name!r}. Decorate "
                    f"{config.run!r} first, or name the trigger as a string in {guessed[1]!r}",
                    task=config.name,
                )
            existing = self._configs.get(config.name)
            if existing is not None and existing != config:
                raise ConfigurationError(
                    f"already configured to run {existing.run!r}; give the second one another name= ",
                    task=config.name,
                )
            self._configs[config.name] = config
            self._rebuild()

    def configure(self, configs: Mapping[str, Any]) -> None:
        """Add or replace app-wide task configs given in the seed's format."""
        parsed = parse_configs(configs)
        self.check_runners(parsed.values())
        with self._lock:
            self._configs.update(parsed)
            self._rebuild()

    def _rebuild(self) -> None:
        self._configuration = Configuration(self._configs)
        self._session_cache = {}

    @property
    def configs(self) -> Configuration:
        """The app-wide task configs (immutable; indexed by trigger)."""
        return self._configuration

    def configs_with(self, session_configs: Mapping[str, Any]) -> Configuration:
        """App-wide configs overlaid with a session's own (parsed once, cached)."""
        base = self._configuration
        if not session_configs:
            return base
        key = dumps(session_configs)
        with self._lock:
            combined = self._session_cache.get(key)
        if combined is None:
            combined = Configuration({**base, **parse_configs(session_configs, stored=True)})
            with self._lock:
                if base is self._configuration:  # not rebuilt meanwhile
                    if len(self._session_cache) > 256:
                        self._session_cache.clear()
                    self._session_cache[key] = combined
        return combined

    def trigger_name_for(self, task: Any, used_by: str = "?") -> str:
        """The trigger a Celery task object stands for in ``after``/``unless``
        of ``used_by``: its trigger task's name; for a task not yet
        decorated, ``t_`` + its short name, remembered so that decorating it
        later under another name is refused instead of waiting forever."""
        run: str = task.name
        with self._lock:
            names = [c.name for c in self._configs.values() if c.run == run]
            if len(names) > 1:
                raise ConfigurationError(
                    f"Celery task {run!r} runs in several trigger tasks ({', '.join(sorted(names))}); "
                    "name one as a string"
                )
            if names:
                return names[0]
            guess = "t_" + run.rsplit(".", 1)[-1]
            self._guessed.setdefault(run, (guess, used_by))
            return guess
