"""``recover``: resolve what a crash or an outage left ``scheduled`` or
``running``.

For every such instance past ``older_than`` seconds (since it was
scheduled, re-sent or started):

* Celery's result backend, when one is configured, knows its message's
  outcome: ``SUCCESS`` finishes it (and cascades), ``FAILURE`` fails it;
* otherwise a ``scheduled`` instance is re-sent with a new dispatch token
  (the lost or late original then runs nothing);
* and a ``running`` one is marked ``failed`` with ``WorkerLost``, so that
  ``replay`` or ``skip`` apply.

Each action is one atomic step conditioned on the token the sweep saw, so
recovery is idempotent and safe to run from several processes at once: the
second one finds the instance changed and skips it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..core.data import escape_text, normalize_kwargs
from ..core.errors import CorruptSession, IllegalTransition, InvalidKwargs, StaleDispatch, UnknownInstance
from ..core.state import IN_FLIGHT, Changes, Instance, Snapshot, Status, TriggerRecord
from ..session.extension import Extension
from ..session.host import error_metadata

if TYPE_CHECKING:
    from ..session.manager import TriggerManager

__all__ = ["RecoveryAction", "Sweeper", "recover"]

logger = logging.getLogger("celery_triggers")

#: Sessions whose UID starts with this are celery-triggers' own bookkeeping.
INTERNAL_PREFIX = "celery-triggers:"
_LEASE_SESSION = INTERNAL_PREFIX + "recovery"


@dataclass(frozen=True)
class RecoveryAction:
    """What ``recover`` did (or, in a dry run, would do) to one instance."""

    session: str
    instance: str
    status: str
    #: ``finished``, ``failed``, ``redispatched`` or ``skipped``.
    action: str
    reason: str
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verb = f"would be {self.action}" if self.dry_run and self.action != "skipped" else self.action
        # One line, whatever a stored UID or an error message holds (CLI output, the sweep's log).
        return escape_text(f"{self.session} {self.instance} ({self.status}): {verb}, {self.reason}")


def _since(instance: Instance) -> float:
    meta = instance.metadata
    keys = ("started_at",) if instance.status is Status.RUNNING else ()
    for key in (*keys, "redispatched_at", "scheduled_at", "created_at"):
        if meta.get(key) is not None:
            return float(meta[key])
    return 0.0


def _outcome(ext: Extension, token: str) -> tuple[str, Any, str | None] | None:
    """(state, result, traceback) from Celery's result backend, if any."""
    from celery.backends.base import DisabledBackend

    if isinstance(ext.app.backend, DisabledBackend):
        return None
    try:
        meta = ext.app.backend.get_task_meta(token)
    except Exception as exc:  # an unreachable result backend: fall back
        logger.warning("celery-triggers: result backend unavailable for %s: %r", token, exc)
        return None
    state = str(meta.get("status") or "PENDING")
    return state, meta.get("result"), meta.get("traceback")


def _error(exc_type: str, message: str, tb: str | None = None, **extra: Any) -> dict[str, Any]:
    """An error record with no exception object at hand (``error_metadata``'s shape)."""
    return {"exc_type": exc_type, "exc_module": "", "exc_message": message, "traceback": tb or "", **extra}


def _resolve(ext: Extension, manager: TriggerManager, instance: Instance, dry_run: bool) -> tuple[str, str]:
    """Resolve one stuck instance; returns (action, reason)."""
    name, token = instance.name, str(instance.metadata.get("task_id") or "")
    outcome = _outcome(ext, token) if token else None
    state, result, tb = outcome if outcome is not None else ("", None, None)
    now = time.time()
    if state == "SUCCESS":
        try:
            stored = normalize_kwargs({"result": result}, what=f"result of {name}")["result"]
        except InvalidKwargs as exc:
            state, result = "FAILURE", exc
        else:
            if not dry_run:
                manager.finish_instance(name, token, stored, {"recovered_at": now})
            return "finished", "the result backend holds its result"
    if state == "FAILURE":
        if isinstance(result, BaseException):
            error = {**error_metadata(result, tb or ""), "recovered_at": now}
        else:  # a backend that returns the raw meta
            raw = result if isinstance(result, dict) else {}
            kind = str(raw.get("exc_type") or type(result).__name__)
            error = _error(kind, str(raw.get("exc_message", result)), tb, recovered_at=now)
        if not dry_run:
            manager.fail_instance(name, token, error)
        return "failed", f"the result backend recorded {error['exc_type']}"
    if state == "RETRY":
        return "skipped", "Celery is retrying its message"
    if instance.status is Status.SCHEDULED:
        if not dry_run:
            manager.redispatch(name, expected_token=token or None)
        return "redispatched", "its message never started; re-sent with a new token"
    if not dry_run:
        manager.fail_instance(
            name,
            token or None,
            _error(
                "WorkerLost",
                "no outcome recorded: the worker running it died, or could not reach storage to finish it "
                "(see the worker log); replay or skip it",
                recovered_at=now,
            ),
        )
    return "failed", "WorkerLost: no outcome recorded"


def recover(
    ext: Extension,
    sessions: Iterable[str] | None = None,
    *,
    older_than: float = 60.0,
    dry_run: bool = False,
) -> list[RecoveryAction]:
    """Resolve every instance left ``scheduled`` or ``running`` for more
    than ``older_than`` seconds, in ``sessions`` (default: all). Returns
    one :class:`RecoveryAction` per such instance, younger ones included
    (as ``skipped``, with the reason)."""
    return _walk(ext, sessions, IN_FLIGHT, older_than, dry_run, lambda m, i: _resolve(ext, m, i, dry_run))


def redispatch(
    ext: Extension,
    sessions: Iterable[str] | None = None,
    *,
    older_than: float = 60.0,
    dry_run: bool = False,
) -> list[RecoveryAction]:
    """Re-send every instance left ``scheduled`` for more than
    ``older_than`` seconds (its message never reached a worker), each with
    a new task id, in ``sessions`` (default: all); younger ones are
    reported as ``skipped``, with the reason."""

    def resend(manager: TriggerManager, instance: Instance) -> tuple[str, str]:
        if dry_run:
            return "redispatched", "its message never started; would be re-sent with a new task id"
        token = str(instance.metadata.get("task_id") or "") or None
        sent = manager.redispatch(instance.name, expected_token=token)
        return "redispatched", f"re-sent as {sent.metadata['task_id']}"

    return _walk(ext, sessions, {Status.SCHEDULED}, older_than, dry_run, resend)


def _walk(
    ext: Extension,
    sessions: Iterable[str] | None,
    statuses: Collection[Status],
    older_than: float,
    dry_run: bool,
    act: Callable[[TriggerManager, Instance], tuple[str, str]],
) -> list[RecoveryAction]:
    """``act`` on every instance in one of ``statuses`` for more than
    ``older_than`` seconds; one action per such instance, and per corrupt
    session."""
    uids = list(sessions) if sessions is not None else ext.storage.sessions()
    actions: list[RecoveryAction] = []
    for uid in uids:
        if uid.startswith(INTERNAL_PREFIX):
            continue
        manager = ext.session(uid)
        try:
            instances = manager.instances
        except CorruptSession as exc:  # only that session: the others are handled
            actions.append(RecoveryAction(uid, "-", "corrupt", "skipped", str(exc), dry_run))
            continue
        for instance in instances.values():
            if instance.status not in statuses:
                continue
            age = time.time() - _since(instance)
            if age < older_than:
                action = "skipped"
                reason = f"{instance.status.value} {age:.0f} s ago, younger than --older-than {older_than:g}"
            else:
                try:
                    action, reason = act(manager, instance)
                except (IllegalTransition, StaleDispatch, UnknownInstance) as exc:
                    action, reason = "skipped", f"changed meanwhile ({exc})"
            actions.append(RecoveryAction(uid, instance.name, instance.status.value, action, reason, dry_run))
    return actions


def _take_lease(ext: Extension, holder: str, seconds: float) -> bool:
    """One process at a time sweeps: a lease record in storage, taken or
    renewed atomically (on every backend)."""
    now = time.time()

    def op(txn: Any) -> bool:
        snapshot: Snapshot = txn.load(_lease_needs())
        record = snapshot.triggers.get("lease")
        if record is not None and record.kwargs.get("holder") != holder and record.kwargs.get("until", 0) > now:
            return False
        txn.write(Changes(triggers={"lease": TriggerRecord("lease", {"holder": holder, "until": now + seconds})}))
        return True

    return bool(ext.storage.atomic(_LEASE_SESSION, op))


def _lease_needs() -> Any:
    from ..core.engine import Needs

    return Needs(triggers=frozenset({"lease"}))


class Sweeper:
    """``triggers_recover_interval``: a worker thread that runs ``recover``
    every interval, on one worker at a time (a lease in storage)."""

    def __init__(self, ext: Extension, interval: float, holder: str):
        self.ext = ext
        self.interval = interval
        self.holder = holder
        self.older_than: float = ext.setting("triggers_recover_older_than")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celery-triggers-recovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if _take_lease(self.ext, self.holder, self.interval * 2):
                    for action in recover(self.ext, older_than=self.older_than):
                        if action.action != "skipped":
                            logger.warning("celery-triggers: recovered %s", action)
            except Exception:
                logger.exception("celery-triggers: recovery sweep failed; next in %s s", self.interval)
