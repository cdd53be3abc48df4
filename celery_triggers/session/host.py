"""What a manager needs from the extension installed on its app, declared
here so that the manager does not import the Celery integration layer above
it; and how an instance records the exception that ended it."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..core.config import Configuration, TaskConfig
from ..core.dispatch import Dispatch
from ..core.errors import TriggersError
from ..core.state import Instance, Status
from ..storage import StorageBackend

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["HookSet", "Host", "TaskRunnerLike", "error_metadata", "host_of", "installed"]


class TaskRunnerLike(Protocol):
    #: Whether it sends messages to workers (they then carry the storage's epoch).
    sends_messages: bool

    def dispatch(self, items: list[Dispatch]) -> None: ...

    def drain(self) -> None: ...


class HookSet(Protocol):
    """What the manager calls on each registered hooks object (the public
    class is :class:`celery_triggers.session.hooks.Hooks`)."""

    def fired(self, session: Any, trigger: str, kwargs: dict[str, Any], scheduled: list[Instance]) -> None: ...

    def status_changed(self, session: Any, instance: str, old: Status | None, new: Status) -> None: ...

    def instance_changed(self, session: Any, instance: Instance, old: Status | None, new: Status) -> None: ...

    def firing(self, session: Any, triggers: list[str], started: float) -> AbstractContextManager[Any] | None: ...

    def running(self, session_uid: str, instance: str, task: Any) -> AbstractContextManager[Any] | None: ...

    def replayed(self, session: Any, instance: Instance) -> None: ...

    def skipped(self, session: Any, instance: Instance, cascade: bool) -> None: ...


class Host(Protocol):
    """What the session API needs from the extension installed on an app
    (``app.triggers``), declared here so that the manager does not import
    the Celery integration above it (the producer and the worker take the
    wider :class:`~.extension.Extension`)."""

    app: Celery
    #: The time as the engine sees it (``time.time``; the testing toolbox
    #: moves it to pass deadlines without sleeping).
    clock: Callable[[], float]

    @property
    def storage(self) -> StorageBackend: ...

    @property
    def default_runner(self) -> str: ...

    @property
    def configs(self) -> Configuration: ...

    def configs_with(self, session_configs: Mapping[str, Any]) -> Configuration: ...

    def check_runners(self, configs: Iterable[TaskConfig]) -> None: ...

    def runner(self, name: str) -> TaskRunnerLike: ...

    def active_runners(self) -> Sequence[TaskRunnerLike]: ...

    def alias_of(self, backend: StorageBackend) -> str | None: ...

    def epoch_of(self, backend: StorageBackend) -> str | None: ...

    def prepare_task(self, task: Any) -> None: ...

    @property
    def max_kwargs_bytes(self) -> int: ...

    @property
    def track_started(self) -> bool: ...

    @property
    def finish_timeout(self) -> float: ...

    @property
    def start_retries(self) -> int: ...

    @property
    def hooks(self) -> Sequence[HookSet]: ...

    def setting(self, name: str) -> Any: ...

    def check_settings(self) -> list[str]: ...

    def reset_storage(self) -> None: ...


def installed(app: Any) -> Host | None:
    """The extension installed on ``app``, or None: the one place that
    knows where ``Triggers(app)`` keeps it."""
    return cast("Host | None", app.__dict__.get("triggers"))


def host_of(app: Celery | None) -> Host:
    """The extension installed on ``app`` (default: Celery's current app);
    a clear error if there is none."""
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    host = installed(app)
    if host is None:
        raise TriggersError(f"celery-triggers is not installed on {app!r}: call Triggers(app) first")
    return host


def error_metadata(exc: BaseException, tb: str | None = None) -> dict[str, Any]:
    """What an instance records about the exception that ended it."""
    return {
        "exc_type": type(exc).__name__,
        "exc_module": type(exc).__module__,
        "exc_message": str(exc),
        "traceback": tb if tb is not None else "".join(traceback.format_exception(exc)),
    }
