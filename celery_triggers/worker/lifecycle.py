"""What Celery decides about a trigger message outside its task body, in
the worker's main process, resolves its instance at once (Celery's
signals, connected once per process):

* a hard time limit (``task_failure`` with ``TimeLimitExceeded``): the
  instance is ``failed`` with it (an uncaught soft time limit is raised in
  the body: the protocol fails it with ``SoftTimeLimitExceeded``);
* its pool process lost (``task_failure`` with ``WorkerLostError``, sent
  only when the message will not be delivered again): ``failed``
  (``WorkerLost``); with ``acks_late`` and ``task_reject_on_worker_lost``
  the message comes back, and the instance waits for it;
* revoked while it ran (``task_revoked``, terminated): ``failed``, the
  revocation named (replayable); revoked or expired before it started:
  that message will never run, and when it was the instance's last, the
  instance is ``abandoned`` (reason: revoked) and never re-sent;
* a task this worker does not know (``task_unknown``) or a message Celery
  rejects (``task_rejected``): ``failed``, saying so.

:class:`LeaseStep` (a bootstep) sets up the worker's lease keeper and
connects these handlers. Every transition is conditioned on the message's
token, like every other,
and is applied by the worker's lease keeper (:mod:`.leases`), off Celery's
event loop. Handlers act only in the process that keeps the leases (a pool
process inherits them, and does nothing).
"""

from __future__ import annotations

import os
import signal as signals_module
from types import SimpleNamespace
from typing import Any

from celery import bootsteps, signals
from celery.exceptions import TimeLimitExceeded, WorkerLostError

from ..core.operations import Fail, Revoke
from ..session.extension import extension_of
from ..session.host import error_metadata
from .forks import install as install_fork_gate
from .headers import MessageIds, trigger_headers
from .leases import KEEPERS, Keeper, keeper_of

__all__ = ["LeaseStep", "connect", "disconnect"]

_UID = "celery-triggers-lifecycle"


def _keeper(app: Any) -> Keeper | None:
    keeper = keeper_of(app) if app is not None else None
    return keeper if keeper is not None and keeper.pid == os.getpid() else None


def _ids(headers: Any) -> MessageIds | None:
    try:
        return trigger_headers(SimpleNamespace(headers=dict(headers or {})))
    except ValueError:
        return None  # the protocol refuses such a message where it runs


def on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    keeper = _keeper(getattr(getattr(request, "task", None), "app", None))
    ids = _ids(getattr(request, "request_dict", None)) if keeper is not None else None
    if keeper is not None and ids is not None:
        keeper.received(str(request.id), ids)


def on_failure(sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any) -> None:
    if not isinstance(exception, (TimeLimitExceeded, WorkerLostError)):
        return  # raised in the body: the protocol resolved it where it ran
    keeper = _keeper(getattr(sender, "app", None))
    ids = keeper.message(str(task_id)) if keeper is not None else None
    if keeper is None or ids is None:
        return
    if isinstance(exception, WorkerLostError):
        error = {
            "exc_type": "WorkerLost",
            "exc_module": "",
            "exc_message": f"the pool process running it exited ({type(exception).__name__}: {exception}); "
            "replay or skip it",
            "traceback": "",
        }
    else:
        error = error_metadata(exception, "")
    keeper.resolve(ids, Fail(ids.name, error, str(task_id)), f"{error['exc_type']} (message {task_id})")


def on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    keeper = _keeper(getattr(sender, "app", None))
    if keeper is None or request is None:
        return
    task_id = str(getattr(request, "id", ""))
    ids = keeper.message(task_id) or _ids(_headers_of(request))
    if ids is None:
        return
    if terminated:
        name = _signal_name(signum)
        error = {
            "exc_type": "TaskRevokedError",
            "exc_module": "celery.exceptions",
            "exc_message": f"revoked while running (terminated{f' by {name}' if name else ''})",
            "traceback": "",
        }
        why = f"revoked while running (message {task_id})"
    else:
        error = {"revoked": "expired" if expired else "revoked"}
        why = f"its message {task_id} was {'expired' if expired else 'revoked'} before it started"
    keeper.resolve(ids, Revoke(ids.name, task_id, terminated=bool(terminated), error=error), why)


def on_unknown(sender: Any = None, name: Any = None, id: Any = None, message: Any = None, **_: Any) -> None:
    _dropped(sender, message, str(id or ""), f"task {name!r} is not registered on this worker")


def on_rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    _dropped(sender, message, "", f"Celery rejected its message ({exc!r})")


def _dropped(consumer: Any, message: Any, task_id: str, reason: str) -> None:
    keeper = _keeper(getattr(consumer, "app", None))
    headers = getattr(message, "headers", None) or {}
    ids = _ids(headers) if keeper is not None else None
    if keeper is None or ids is None:
        return
    token = task_id or str(headers.get("id") or "")
    error = {
        "exc_type": "NotRegistered",
        "exc_module": "celery.exceptions",
        "exc_message": f"{reason} ({keeper.hostname})",
        "traceback": "",
    }
    keeper.resolve(ids, Fail(ids.name, error, token or None), reason)


def _headers_of(request: Any) -> dict[str, Any]:
    """A revoked request's headers: its context holds the custom headers as
    attributes (and, from some Celery versions, as ``headers``)."""
    from ..core.dispatch import HEADER_EPOCH, HEADER_INSTANCE, HEADER_SESSION, HEADER_STORAGE

    found = dict(getattr(request, "headers", None) or {})
    for header in (HEADER_SESSION, HEADER_INSTANCE, HEADER_STORAGE, HEADER_EPOCH):
        value = getattr(request, header, None)
        if value is not None:
            found[header] = value
    return found


def _signal_name(signum: Any) -> str:
    try:
        return signals_module.Signals(int(signum)).name
    except (TypeError, ValueError):
        return str(signum or "")


_HANDLERS = (
    (signals.task_received, on_received),
    (signals.task_failure, on_failure),
    (signals.task_revoked, on_revoked),
    (signals.task_unknown, on_unknown),
    (signals.task_rejected, on_rejected),
)


def connect() -> None:
    """Connect the handlers (once per process, whatever the number of apps)."""
    for signal, handler in _HANDLERS:
        signal.connect(handler, weak=False, dispatch_uid=f"{_UID}-{handler.__name__}")


def disconnect() -> None:
    for signal, handler in _HANDLERS:
        signal.disconnect(handler, dispatch_uid=f"{_UID}-{handler.__name__}")


class LeaseStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Keeps the leases of the instances this worker runs and resolves at
    once what Celery decides about their messages in the main process
    (``triggers_heartbeat_interval``; 0 turns leases off)."""

    label = "celery-triggers leases"
    #: After the pool: its first processes fork before the keeper's thread exists.
    requires = ("celery.worker.components:Pool", "celery_triggers.worker.bootstep:TriggersStep")

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)
        self.keeper: Keeper | None = None
        ext = extension_of(parent.app)
        if ext is None:
            return
        interval = float(ext.setting("triggers_heartbeat_interval") or 0)
        if interval > 0:  # before the pool forks: its processes then record leases at each start
            install_fork_gate()
            self.keeper = KEEPERS[id(parent.app)] = Keeper(ext, parent.hostname, interval)

    def start(self, parent: Any) -> None:
        if self.keeper is not None:
            connect()
            self.keeper.start()

    def stop(self, parent: Any) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            KEEPERS.pop(id(parent.app), None)
            self.keeper = None

    def terminate(self, parent: Any) -> None:
        """A cold shutdown (or Celery's test worker) stops it too."""
        self.stop(parent)
