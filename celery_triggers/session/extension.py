"""What the layers above the session API (the producer's bulk fire, the
worker side) need from the extension installed on an app: the manager's
:class:`~.host.Host`, plus a manager for any session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from ..storage import StorageBackend
from .host import Host, installed
from .manager import TriggerManager

__all__ = ["Extension", "extension_of"]


class Extension(Host, Protocol):
    """``app.triggers`` as the producer and the worker see it."""

    def session(self, uid: str, storage: str | None = None) -> TriggerManager: ...

    def binder(self, storage: str | None = None) -> Callable[[str], TriggerManager]: ...

    def storage_for(self, alias: str | None) -> StorageBackend: ...


def extension_of(app: Any) -> Extension | None:
    """The extension installed on ``app``, or None."""
    return cast("Extension | None", installed(app))
