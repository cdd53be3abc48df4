"""``Triggers(app)``: install celery-triggers on a Celery app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celery import Celery

from ..core.config import Configuration, TaskConfig
from ..core.dispatch import LOCAL_ALIAS
from ..core.errors import TriggersError, UnknownStorage
from ..producer.runners import TaskRunner, resolve_runner_class
from ..session.hooks import Hooks
from ..session.host import installed
from ..storage import StorageBackend, mask_url, resolve_storage
from ..storage.epoch import current_epoch
from . import settings
from .compat import legacy_kwargs
from .configs import ConfigRegistry
from .settings import default_storage_url

if TYPE_CHECKING:
    from ..producer.bulk import FireResult
    from ..session.manager import Fired, TriggerManager
    from ..worker.recovery import RecoveryAction

__all__ = ["Triggers", "default_storage_url"]


class Triggers:
    """The celery-triggers extension of one Celery app, as ``app.triggers``.

    ``Triggers(app)`` installs it (once: a second call returns the same
    object), adds the worker bootstep, routes its tasks' trigger messages through
    the worker protocol (:mod:`celery_triggers.worker.protocol`) and has Celery's own
    ``report`` and ``inspect conf`` mask the storage URLs (:mod:`.censor`).
    """

    app: Celery

    def __new__(cls, app: Celery) -> Triggers:
        existing = installed(app)
        if isinstance(existing, Triggers):
            return existing
        self = super().__new__(cls)
        self._setup(app)
        return self

    def __init__(self, app: Celery):  # everything happens once, in __new__
        pass

    def _setup(self, app: Celery) -> None:
        from ..worker.bootstep import TriggersStep
        from ..worker.deadlines import DeadlineStep
        from ..worker.lifecycle import LeaseStep
        from ..worker.protocol import wrap_tasks
        from ..worker.sweeper import SweeperStep
        from .censor import install_censor

        self.app = app
        self._registry = ConfigRegistry()
        self._storage: StorageBackend | None = None
        self._other_storages: dict[str, StorageBackend] = {}
        #: URL -> (alias, backend) of storages bound by hand in this process
        #: (by URL: the seed's form builds a new backend object per call).
        self._local_aliases: dict[str, tuple[str, StorageBackend]] = {}
        self._runners: dict[str, TaskRunner] = {}
        self._hooks: tuple[Hooks, ...] = ()
        #: id(backend) -> its epoch, read once per process (see storage/epoch.py).
        self._epochs: dict[int, str | None] = {}
        self._lock = threading.RLock()
        #: setting name -> (its raw value in ``app.conf``, parsed): a worker
        #: reads several settings per task; parsing (a class setting imports
        #: its dotted path) happens again only when the raw value changes.
        self._parsed: dict[str, tuple[Any, Any]] = {}
        #: The time as the engine sees it (see ``celery_triggers.testing.DeadlineClock``).
        self.clock: Callable[[], float] = time.time
        app.triggers = self
        for step in (TriggersStep, LeaseStep, SweeperStep, DeadlineStep):
            app.steps["worker"].add(step)
        install_censor()  # Celery's report and inspect conf mask the storage URLs (see .censor)
        if app.finalized:
            wrap_tasks(app)
        else:
            app.on_after_finalize.connect(wrap_tasks, weak=False)

    @classmethod
    def of(cls, app: Celery | None = None) -> Triggers:
        """The extension installed on ``app`` (default: Celery's current app)."""
        from ..session.manager import host_of

        host = host_of(app)
        if not isinstance(host, Triggers):
            raise TriggersError(f"celery-triggers is not installed on {host.app!r}: call Triggers(app) first")
        return host

    # -- settings -----------------------------------------------------------
    def setting(self, name: str) -> Any:
        """``app.conf[name]`` parsed by the settings table
        (:mod:`celery_triggers.app.settings`): its default when unset, a
        :class:`ConfigurationError` naming the setting when it cannot mean
        anything."""
        raw = self.app.conf.get(name)
        known = self._parsed.get(name)
        if known is not None and known[0] is raw:  # the very object parsed last time: same meaning
            return known[1]
        value = settings.parse(name, raw)
        if not isinstance(raw, (dict, list, set)):  # one changed in place keeps its identity
            self._parsed[name] = (raw, value)
        return value

    def check_settings(self) -> list[str]:
        """Every ``triggers_*`` setting parsed (a :class:`ConfigurationError`
        for the first that means nothing); returns a warning per setting
        the table does not know (a typo, with the likely setting named)."""
        warnings = [settings.describe_unknown(key) for key in settings.unknown_settings(self.app.conf)]
        settings.check(self.app.conf)
        return warnings

    @property
    def storage_url(self) -> str:
        return str(self.setting("triggers_storage") or default_storage_url(self.app))

    @property
    def storage(self) -> StorageBackend:
        """The storage backend, built from ``triggers_storage`` on first use."""
        with self._lock:
            if self._storage is None:
                self._storage = resolve_storage(self.storage_url, session_ttl=self.setting("triggers_session_ttl"))
            return self._storage

    def reset_storage(self) -> None:
        """Close and forget the storages (after a settings change)."""
        with self._lock:
            for backend in [self._storage, *self._other_storages.values()]:
                if backend is not None:
                    backend.close()
            self._storage = None
            self._other_storages.clear()
            self._local_aliases.clear()
            self._epochs.clear()

    @property
    def storage_aliases(self) -> dict[str, str]:
        """``triggers_storages``: alias -> URL of the other storages that
        messages may name (by alias, never by URL)."""
        aliases: dict[str, str] = self.setting("triggers_storages")
        return aliases

    def storage_for(self, alias: str | None) -> StorageBackend:
        """The app's storage (``alias`` None), or another one this process is
        configured to trust: an alias of ``triggers_storages``, or a storage
        this process bound a session to by hand. Anything else is an
        :class:`UnknownStorage`, and nothing is opened."""
        if alias is None:
            return self.storage
        with self._lock:
            for local_alias, local in self._local_aliases.values():
                if local_alias == alias:
                    return local
            found = self._other_storages.get(alias)
            if found is None:
                url = self.storage_aliases.get(alias)
                if url is None:
                    known = ", ".join(sorted(self.storage_aliases)) or "none"
                    raise UnknownStorage(f"no storage alias {alias!r} in triggers_storages (known: {known})")
                found = self._other_storages[alias] = resolve_storage(url)
            return found

    def alias_of(self, backend: StorageBackend) -> str | None:
        """How a message names ``backend``: None for the app's storage, its
        alias when ``triggers_storages`` lists its URL, else an alias that
        only this process knows (in-process runners only)."""
        if backend is self._storage or backend.url == self.storage_url:
            return None
        with self._lock:
            for alias, other in self._other_storages.items():
                if other is backend:
                    return alias
        for alias, url in self.storage_aliases.items():
            if url == backend.url:
                with self._lock:
                    self._other_storages.setdefault(alias, backend)
                return alias
        with self._lock:
            entry = self._local_aliases.get(backend.url)
            alias = entry[0] if entry is not None else f"{LOCAL_ALIAS}{len(self._local_aliases)}"
            self._local_aliases[backend.url] = (alias, backend)
            return alias

    def epoch_of(self, backend: StorageBackend) -> str | None:
        """The epoch ``backend`` had when this process first sent a message
        from it (created then if it had none); messages carry it, so that a
        worker tells a storage that lost data from a stale message. None
        when it could not be read (the message goes without)."""
        key = id(backend)
        if key not in self._epochs:
            try:
                found = current_epoch(backend)
            except TriggersError:
                return None
            with self._lock:
                self._epochs[key] = found.id if found is not None else None
        return self._epochs[key]

    def prepare_task(self, task: Any) -> None:
        """Route ``task``'s trigger messages through the worker protocol
        (in-process runners call this: a task registered after the app was
        finalized, and not decorated, is wrapped here)."""
        from ..worker.protocol import wrap_task

        wrap_task(task)

    # -- worker protocol settings --------------------------------------------
    @property
    def track_started(self) -> bool:
        return bool(self.setting("triggers_track_started"))

    @property
    def finish_timeout(self) -> float:
        return float(self.setting("triggers_finish_timeout"))

    @property
    def max_kwargs_bytes(self) -> int:
        return int(self.setting("triggers_max_kwargs_bytes"))

    @property
    def start_retries(self) -> int:
        return int(self.setting("triggers_start_retries"))

    @property
    def default_runner(self) -> str:
        return str(self.setting("triggers_runner"))

    @property
    def manager_class(self) -> type[TriggerManager]:
        cls: type[TriggerManager] = self.setting("triggers_manager_class")
        return cls

    def runner(self, name: str) -> TaskRunner:
        with self._lock:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = resolve_runner_class(name)(self.app)
            return runner

    @property
    def hooks(self) -> tuple[Hooks, ...]:
        """The registered :class:`~celery_triggers.session.hooks.Hooks`, in order."""
        return self._hooks

    def add_hooks(self, hooks: Hooks) -> None:
        """Call ``hooks`` after every committed operation of this app's
        sessions, in this process (register it where workers import it
        too). Adding the same object twice is harmless."""
        if not isinstance(hooks, Hooks):
            raise TypeError(f"add_hooks takes a celery_triggers.Hooks instance, got {hooks!r}")
        with self._lock:
            if hooks not in self._hooks:
                self._hooks = (*self._hooks, hooks)

    def active_runners(self) -> list[TaskRunner]:
        with self._lock:
            return list(self._runners.values())

    # -- configuration (see .configs) -----------------------------------------
    def check_runners(self, configs: Iterable[TaskConfig]) -> None:
        """Refuse a config whose ``using`` names no runner."""
        self._registry.check_runners(configs)

    def register(self, config: TaskConfig) -> None:
        """Add one app-wide task config (the decorator calls this)."""
        self._registry.register(config)

    def configure(self, configs: Mapping[str, Any]) -> None:
        """Add or replace app-wide task configs given in the seed's format."""
        self._registry.configure(configs)

    @property
    def configs(self) -> Configuration:
        """The app-wide task configs (immutable; indexed by trigger)."""
        return self._registry.configs

    def configs_with(self, session_configs: Mapping[str, Any]) -> Configuration:
        """App-wide configs overlaid with a session's own (parsed once, cached)."""
        return self._registry.configs_with(session_configs)

    def trigger_name_for(self, task: Any, used_by: str = "?") -> str:
        """The trigger a Celery task object stands for in ``after``/``unless``
        of ``used_by`` (see :meth:`ConfigRegistry.trigger_name_for`)."""
        return self._registry.trigger_name_for(task, used_by)

    # -- sessions -----------------------------------------------------------
    def session(self, uid: str, storage: str | None = None) -> TriggerManager:
        """A manager bound to session ``uid`` (in the app's storage unless
        ``storage`` names another by its alias, see ``triggers_storages``)."""
        return self.manager_class(self.storage_for(storage).bind(uid), app=self.app)

    def binder(self, storage: str | None = None) -> Callable[[str], TriggerManager]:
        """:meth:`session` for many sessions (a bulk fire): the manager class
        and the storage looked up once, not once per session."""
        cls, backend, app = self.manager_class, self.storage_for(storage), self.app
        return lambda uid: cls(backend.bind(uid), app=app)

    def fire(
        self,
        session_uid: str,
        trigger_name: str,
        trigger_kwargs: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Fired:
        """Fire ``trigger_name`` in session ``session_uid`` with
        ``trigger_kwargs`` (as :meth:`TriggerManager.fire`); returns the
        instances it scheduled, with ``.wait(timeout=...)``. ``key``: an
        idempotency key (a second fire with it changes nothing; its result
        says ``duplicate``). ``kwargs=`` is the 0.1.0 spelling, deprecated."""
        return self.session(session_uid).fire(trigger_name, legacy_kwargs(trigger_kwargs, kwargs), key=key)

    def fire_on_commit(
        self,
        session_uid: str,
        trigger_name: str,
        trigger_kwargs: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        using: str | None = None,
    ) -> None:
        """:meth:`fire` once the Django transaction (of database ``using``) commits, never on a
        rollback, like Celery's ``delay_on_commit``; name, kwargs and key are checked now."""
        from ..producer.bulk import defer_fire

        defer_fire(self, session_uid, trigger_name, trigger_kwargs, key, using)

    def fire_many(self, events: Iterable[Any]) -> list[FireResult]:
        """Fire each ``(session, trigger[, kwargs[, key]])`` event in turn; one
        :class:`~celery_triggers.producer.bulk.FireResult` per event (a
        failing event carries its typed error and does not stop the others)."""
        from ..producer.bulk import fire_many

        return fire_many(self, events)

    async def afire(
        self, session_uid: str, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None, *, key: Any = None
    ) -> list[Any]:
        """:meth:`fire` for asyncio code: runs in a worker thread."""
        from ..producer.bulk import afire

        return await afire(self, session_uid, trigger_name, trigger_kwargs, key)

    async def afire_many(self, events: Iterable[Any]) -> list[FireResult]:
        """:meth:`fire_many` for asyncio code: runs in a worker thread."""
        from ..producer.bulk import afire_many

        return await afire_many(self, events)

    def recover(
        self, sessions: Iterable[str] | None = None, *, older_than: float = 60.0, dry_run: bool = False
    ) -> list[RecoveryAction]:
        """Resolve instances left ``scheduled`` or ``running`` for more than
        ``older_than`` seconds by a crash or an outage, in ``sessions``
        (default: every session). See :mod:`celery_triggers.worker.recovery`."""
        from ..worker.recovery import recover

        return recover(self, sessions, older_than=older_than, dry_run=dry_run)

    def redispatch(
        self, sessions: Iterable[str] | None = None, *, older_than: float = 60.0, dry_run: bool = False
    ) -> list[RecoveryAction]:
        """Re-send instances left ``scheduled`` for more than ``older_than``
        seconds, in ``sessions`` (default: every session), each with a new
        task id. See :mod:`celery_triggers.worker.recovery`."""
        from ..worker.recovery import redispatch

        return redispatch(self, sessions, older_than=older_than, dry_run=dry_run)

    def purge(self, older_than: float, *, resolved_only: bool = False, dry_run: bool = False) -> list[str]:
        """Delete the sessions with nothing scheduled or running whose last
        change is more than ``older_than`` seconds old (see
        :meth:`StorageBackend.purge`); returns their UIDs."""
        return self.storage.purge(older_than, resolved_only=resolved_only, dry_run=dry_run)

    def update_configuration(self, session_uid: str, configs: Mapping[str, Any]) -> None:
        self.session(session_uid).update_configuration(configs)

    def __repr__(self) -> str:
        return f"<Triggers app={self.app.main!r} storage={mask_url(self.storage_url)!r}>"
