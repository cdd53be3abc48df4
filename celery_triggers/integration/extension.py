"""``Triggers(app)``: install celery-triggers on a Celery app."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu.utils.imports import symbol_by_name

from .._json import dumps
from ..config import Configuration, TaskConfig, parse_configs
from ..errors import ConfigurationError, TriggersError
from ..runners import TaskRunner, resolve_runner_class
from ..storage import StorageBackend, resolve_storage

if TYPE_CHECKING:
    from ..manager import TriggerManager

__all__ = ["Triggers", "default_storage_url"]

#: Settings read from ``app.conf`` (all optional).
SETTINGS = {
    "triggers_storage": "storage URL (default: a SQLite file in the temp dir, see default_storage_url)",
    "triggers_runner": "default runner name (default: 'celery')",
    "triggers_manager_class": "TriggerManager subclass or its dotted path",
    "triggers_session_ttl": "seconds a session lives after its last change (Redis, Django cache)",
}


def default_storage_url(app: Celery) -> str:
    """``sqlite:///<tempdir>/celery-triggers-<app main>.sqlite3``.

    Shared by every process of the app on one machine (worker and producers
    alike); set ``triggers_storage`` for anything else.
    """
    main = (app.main or "default").replace(os.sep, "_")
    return "sqlite:///" + os.path.join(tempfile.gettempdir(), f"celery-triggers-{main}.sqlite3")


class Triggers:
    """The celery-triggers extension of one Celery app, as ``app.triggers``.

    ``Triggers(app)`` installs it (once: a second call returns the same
    object), adds the worker bootstep and connects the signal handlers.
    """

    app: Celery

    def __new__(cls, app: Celery) -> Triggers:
        existing = app.__dict__.get("triggers")
        if isinstance(existing, Triggers):
            return existing
        self = super().__new__(cls)
        self._setup(app)
        return self

    def __init__(self, app: Celery):  # everything happens once, in __new__
        pass

    def _setup(self, app: Celery) -> None:
        from .bootstep import TriggersStep
        from .handlers import connect_handlers

        self.app = app
        self._configs: dict[str, TaskConfig] = {}
        self._configuration = Configuration()
        self._session_cache: dict[str, Configuration] = {}
        self._storage: StorageBackend | None = None
        self._other_storages: dict[str, StorageBackend] = {}
        self._runners: dict[str, TaskRunner] = {}
        self._lock = threading.RLock()
        app.triggers = self
        app.steps["worker"].add(TriggersStep)
        connect_handlers()

    @classmethod
    def of(cls, app: Celery | None = None) -> Triggers:
        """The extension installed on ``app`` (default: Celery's current app)."""
        from ..manager import host_of

        host = host_of(app)
        if not isinstance(host, Triggers):
            raise TriggersError(f"celery-triggers is not installed on {host.app!r}: call Triggers(app) first")
        return host

    # -- settings -----------------------------------------------------------
    @property
    def storage_url(self) -> str:
        return str(self.app.conf.get("triggers_storage") or default_storage_url(self.app))

    @property
    def storage(self) -> StorageBackend:
        """The storage backend, built from ``triggers_storage`` on first use."""
        with self._lock:
            if self._storage is None:
                self._storage = resolve_storage(self.storage_url, session_ttl=self.app.conf.get("triggers_session_ttl"))
            return self._storage

    def reset_storage(self) -> None:
        """Close and forget the storages (after a settings change)."""
        with self._lock:
            for backend in [self._storage, *self._other_storages.values()]:
                if backend is not None:
                    backend.close()
            self._storage = None
            self._other_storages.clear()

    def storage_for(self, url: str | None) -> StorageBackend:
        """The app's storage, or another one by URL (a session created with
        the seed's ``TriggerManager(CacheStorageBackend(uid))`` form)."""
        if url is None or url == self.storage_url:
            return self.storage
        with self._lock:
            backend = self._other_storages.get(url)
            if backend is None:
                backend = self._other_storages[url] = resolve_storage(url)
            return backend

    @property
    def default_runner(self) -> str:
        return str(self.app.conf.get("triggers_runner") or "celery")

    @property
    def manager_class(self) -> type[TriggerManager]:
        from ..manager import TriggerManager

        value = self.app.conf.get("triggers_manager_class") or TriggerManager
        cls = symbol_by_name(value) if isinstance(value, str) else value  # type: ignore[no-untyped-call]
        if not (isinstance(cls, type) and issubclass(cls, TriggerManager)):
            raise ConfigurationError(f"triggers_manager_class must be a TriggerManager subclass, got {value!r}")
        return cls

    def runner(self, name: str) -> TaskRunner:
        with self._lock:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = resolve_runner_class(name)(self.app)
            return runner

    def active_runners(self) -> list[TaskRunner]:
        with self._lock:
            return list(self._runners.values())

    # -- configuration ------------------------------------------------------
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
            combined = Configuration({**base, **parse_configs(session_configs)})
            with self._lock:
                if base is self._configuration:  # not rebuilt meanwhile
                    if len(self._session_cache) > 256:
                        self._session_cache.clear()
                    self._session_cache[key] = combined
        return combined

    def trigger_name_for(self, task: Any) -> str:
        """The trigger a Celery task object stands for in ``after``/``unless``."""
        run = task.name
        with self._lock:
            names = [c.name for c in self._configs.values() if c.run == run]
        if len(names) > 1:
            raise ConfigurationError(
                f"Celery task {run!r} runs in several trigger tasks ({', '.join(sorted(names))}); name one as a string"
            )
        return names[0] if names else "t_" + run.rsplit(".", 1)[-1]

    # -- sessions -----------------------------------------------------------
    def session(self, uid: str, storage_url: str | None = None) -> TriggerManager:
        """A manager bound to session ``uid`` (in the app's storage unless
        ``storage_url`` names another)."""
        return self.manager_class(self.storage_for(storage_url).bind(uid), app=self.app)

    def fire(self, session_uid: str, trigger_name: str, kwargs: Mapping[str, Any] | None = None) -> list[Any]:
        """Fire ``trigger_name`` in session ``session_uid``."""
        return self.session(session_uid).fire(trigger_name, kwargs)

    def update_configuration(self, session_uid: str, configs: Mapping[str, Any]) -> None:
        self.session(session_uid).update_configuration(configs)

    def __repr__(self) -> str:
        return f"<Triggers app={self.app.main!r} storage={self.storage_url!r}>"
