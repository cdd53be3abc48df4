"""What a manager needs from the extension installed on its app, declared
here so that the manager does not import the Celery integration layer above
it; and how an instance records the exception that ended it."""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

from .config import Configuration, TaskConfig
from .dispatch import Dispatch
from .errors import TriggersError
from .storage import StorageBackend

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["Host", "TaskRunnerLike", "error_metadata", "host_of"]


class TaskRunnerLike(Protocol):
    def dispatch(self, items: list[Dispatch]) -> None: ...

    def drain(self) -> None: ...


class Host(Protocol):
    """What a manager needs from the extension installed on its app
    (``app.triggers``); declared here so the manager does not import the
    Celery integration layer above it."""

    app: Celery

    @property
    def storage(self) -> StorageBackend: ...

    @property
    def default_runner(self) -> str: ...

    @property
    def configs(self) -> Configuration: ...

    def configs_with(self, session_configs: Mapping[str, Any]) -> Configuration: ...

    def check_runners(self, configs: Iterable[TaskConfig]) -> None: ...

    def runner(self, name: str) -> TaskRunnerLike: ...

    def active_runners(self) -> list[TaskRunnerLike]: ...

    def alias_of(self, backend: StorageBackend) -> str | None: ...

    def prepare_task(self, task: Any) -> None: ...

    @property
    def max_kwargs_bytes(self) -> int: ...


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
