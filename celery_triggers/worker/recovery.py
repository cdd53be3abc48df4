"""``recover``: resolve what a crash or an outage left ``scheduled`` or
``running`` (run by the sweeper bootstep, :mod:`.sweeper`, and by
``celery triggers recover``).

* A **running** instance whose worker holds its lease (renewed within
  three heartbeat intervals, see :mod:`celery_triggers.core.leases`) is
  never touched, whatever its age. When the lease expired (the worker is
  gone, or no longer runs it): Celery's result backend, when it knows the
  message's outcome, finishes (and cascades) or fails it; else, for a task
  whose message will come back (``acks_late``), the instance is re-sent
  with a token added (the returning message is then inert, or runs first:
  whichever starts first); otherwise it is ``failed`` (``WorkerLost``), so
  that ``replay`` or ``skip`` apply. An instance started by a worker
  without leases (an earlier version) is judged by its age instead
  (``older_than`` since it started), until a worker with leases runs it.
* A **scheduled** instance whose newest message was sent more than
  ``older_than`` seconds ago (twice that after one re-send, four times
  after two, ...) may have lost its message: the result backend's outcome
  when it knows one, else it is re-sent with a token added (its earlier
  messages stay valid: a long queue is never starved, each instance runs
  once).
* A storage that lost data (see :mod:`celery_triggers.storage.epoch`) is
  reported first, as an action of its own.

Each action is one atomic step conditioned on the token the sweep read, so
recovery is idempotent and safe to run from several processes at once: the
second finds the instance changed and skips it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

from ..core.data import escape_text, normalize_kwargs
from ..core.engine import tokens_of
from ..core.errors import CorruptSession, IllegalTransition, InvalidKwargs, StaleDispatch, UnknownInstance
from ..core.leases import Heartbeat, dispatch_refused, lease_state, resend_due, since_dispatch
from ..core.operations import Lost
from ..core.state import IN_FLIGHT, Instance, Status, is_internal
from ..session.extension import Extension
from ..session.host import error_metadata
from ..session.manager import TriggerManager
from ..storage.epoch import losses
from .leases import read_heartbeats

__all__ = ["RecoveryAction", "recover", "redispatch"]

logger = logging.getLogger("celery_triggers")


@dataclass(frozen=True)
class RecoveryAction:
    """What ``recover`` did (or, in a dry run, would do) to one instance."""

    session: str
    instance: str
    status: str
    #: ``finished``, ``failed``, ``redispatched``, ``skipped``, or ``lost data`` (the storage's).
    action: str
    reason: str
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verb = (
            f"would be {self.action}" if self.dry_run and self.action not in ("skipped", "lost data") else self.action
        )
        # One line, whatever a stored UID or an error message holds (CLI output, the sweep's log).
        return escape_text(f"{self.session} {self.instance} ({self.status}): {verb}, {self.reason}")


def _outcome(ext: Extension, tokens: Iterable[str]) -> tuple[str, str, Any, str | None] | None:
    """(token, state, result, traceback) of the first of ``tokens`` whose
    outcome Celery's result backend knows, if any."""
    from celery.backends.base import DisabledBackend

    if isinstance(ext.app.backend, DisabledBackend):
        return None
    for token in tokens:
        try:
            meta = ext.app.backend.get_task_meta(token)
        except Exception as exc:  # an unreachable result backend: fall back
            logger.warning("celery-triggers: result backend unavailable for %s: %r", token, exc)
            return None
        state = str(meta.get("status") or "PENDING")
        if state in ("SUCCESS", "FAILURE", "RETRY"):
            return token, state, meta.get("result"), meta.get("traceback")
    return None


def _error(exc_type: str, message: str, tb: str | None = None, **extra: Any) -> dict[str, Any]:
    """An error record with no exception object at hand (``error_metadata``'s shape)."""
    return {"exc_type": exc_type, "exc_module": "", "exc_message": message, "traceback": tb or "", **extra}


def _from_backend(ext: Extension, manager: TriggerManager, instance: Instance, dry_run: bool) -> tuple[str, str] | None:
    """Apply what the result backend knows of the instance's messages."""
    found = _outcome(ext, tokens_of(instance))
    if found is None:
        return None
    token, state, result, tb = found
    name, now = instance.name, time.time()
    if state == "RETRY":
        return "skipped", "Celery is retrying its message"
    if state == "SUCCESS":
        try:
            stored = normalize_kwargs({"result": result}, what=f"result of {name}")["result"]
        except InvalidKwargs as exc:
            state, result = "FAILURE", exc
        else:
            if not dry_run:
                manager.finish_instance(name, token, stored, {"recovered_at": now})
            return "finished", "the result backend holds its result"
    if isinstance(result, BaseException):
        error = {**error_metadata(result, tb or ""), "recovered_at": now}
    else:  # a backend that returns the raw meta
        raw = result if isinstance(result, dict) else {}
        kind = str(raw.get("exc_type") or type(result).__name__)
        error = _error(kind, str(raw.get("exc_message", result)), tb, recovered_at=now)
    if not dry_run:
        manager.fail_instance(name, token, error)
    return "failed", f"the result backend recorded {error['exc_type']}"


def _comes_back(ext: Extension, manager: TriggerManager, instance: Instance) -> bool:
    """Whether a lost run's message will be delivered again (``acks_late``)."""
    config = manager.get_configuration().get(instance.task)
    task = ext.app.tasks.get(config.run) if config is not None else None
    return bool(task.acks_late if task is not None else ext.app.conf.task_acks_late)


def _running(
    ext: Extension,
    manager: TriggerManager,
    instance: Instance,
    beats: Mapping[str, Heartbeat],
    older_than: float,
    dry_run: bool,
) -> tuple[str, str]:
    now = time.time()
    state = lease_state(manager.uid, instance, beats, now)
    worker = instance.metadata.get("hostname") or "?"
    started = float(instance.metadata.get("started_at") or now)
    if state == "live":
        return "skipped", f"running {now - started:.0f} s under a live lease (worker {worker})"
    if state == "legacy" and now - started < older_than:
        return "skipped", f"running {now - started:.0f} s, younger than --older-than {older_than:g} (no lease)"
    known = _from_backend(ext, manager, instance, dry_run)
    if known is not None:
        return known
    why = f"lease expired (worker {worker})" if state == "expired" else "no outcome recorded"
    token = str(instance.metadata.get("task_id") or "")
    if _comes_back(ext, manager, instance):
        if not dry_run:
            manager.apply(Lost(instance.name, token, resend_token=str(uuid.uuid4())))
        return "redispatched", f"{why}; re-sent, its message may come back too: whichever starts first runs"
    error = _error(
        "WorkerLost",
        f"{why}: the worker running it died, or could not reach storage to finish it (see the worker log); "
        "replay or skip it",
        recovered_at=now,
    )
    if not dry_run:
        manager.apply(Lost(instance.name, token, error))
    return "failed", f"WorkerLost: {why}"


def _scheduled(
    ext: Extension, manager: TriggerManager, instance: Instance, older_than: float, dry_run: bool
) -> tuple[str, str]:
    now = time.time()
    sent = since_dispatch(instance)
    age = now - sent if sent is not None else 0.0
    if not resend_due(instance, now, older_than):
        resends = max(int(instance.metadata.get("dispatches", 1)) - 1, 0)
        doubled = f", doubled for each of its {resends} re-send(s)" if resends else ""
        return "skipped", f"sent {age:.0f} s ago, younger than --older-than {older_than:g}{doubled}"
    known = _from_backend(ext, manager, instance, dry_run)
    if known is not None:
        return known
    if not dry_run:
        manager.redispatch(instance.name, expected_token=str(instance.metadata.get("task_id") or "") or None)
    return "redispatched", f"sent {age:.0f} s ago and not started: re-sent with a token added"


def recover(
    ext: Extension,
    sessions: Iterable[str] | None = None,
    *,
    older_than: float = 60.0,
    dry_run: bool = False,
    gate: Callable[[], AbstractContextManager[Any]] = nullcontext,
    census: Counter[str] | None = None,
) -> list[RecoveryAction]:
    """Resolve what a crash or an outage left ``scheduled`` or ``running``
    in ``sessions`` (default: all), by the rules above. Returns one
    :class:`RecoveryAction` per such instance, those left alone included
    (``skipped``, with the reason), and first one for a storage that lost
    data. ``gate``: held around each session's storage work (the worker's
    sweep holds its fork gate, see :mod:`.forks`). ``census``, when given,
    counts every instance the walk read by its status (as read, before any
    action)."""
    actions: list[RecoveryAction] = []
    with gate():
        lost = losses(ext.storage)
        beats = read_heartbeats(ext.storage)
    if lost:
        actions.append(RecoveryAction("-", "-", "storage", "lost data", _describe_loss(lost), dry_run))

    def act(manager: TriggerManager, instance: Instance) -> tuple[str, str]:
        if instance.status is Status.RUNNING:
            return _running(ext, manager, instance, beats, older_than, dry_run)
        return _scheduled(ext, manager, instance, older_than, dry_run)

    return actions + _walk(ext, sessions, IN_FLIGHT, dry_run, act, gate, census, deadlines=not dry_run)


def redispatch(
    ext: Extension,
    sessions: Iterable[str] | None = None,
    *,
    older_than: float = 60.0,
    dry_run: bool = False,
) -> list[RecoveryAction]:
    """Re-send every instance left ``scheduled`` for more than
    ``older_than`` seconds since its newest message (an operator's
    decision: no doubling), each with a token added, in ``sessions``
    (default: all); younger ones are reported as ``skipped``, with the reason."""

    def resend(manager: TriggerManager, instance: Instance) -> tuple[str, str]:
        sent = since_dispatch(instance)
        age = time.time() - sent if sent is not None else older_than
        if age < older_than and not dispatch_refused(instance):
            return "skipped", f"scheduled {age:.0f} s ago, younger than --older-than {older_than:g}"
        if dry_run:
            return "redispatched", "its message never started; would be re-sent with a token added"
        token = str(instance.metadata.get("task_id") or "") or None
        sent_now = manager.redispatch(instance.name, expected_token=token)
        return "redispatched", f"re-sent as {sent_now.metadata['task_id']}"

    return _walk(ext, sessions, {Status.SCHEDULED}, dry_run, resend)


def _walk(
    ext: Extension,
    sessions: Iterable[str] | None,
    statuses: Iterable[Status],
    dry_run: bool,
    act: Any,
    gate: Callable[[], AbstractContextManager[Any]] = nullcontext,
    census: Counter[str] | None = None,
    *,
    deadlines: bool = False,
) -> list[RecoveryAction]:
    """``act`` on every instance in one of ``statuses``; one action per
    such instance, and per corrupt session (``gate`` held per session).
    ``deadlines``: index again the deadlines the index missed (see
    :func:`missed_deadlines`)."""
    with gate():
        uids = list(sessions) if sessions is not None else ext.storage.sessions()
    wanted = set(statuses)
    actions: list[RecoveryAction] = []
    for uid in uids:
        if not is_internal(uid):
            with gate():
                actions += _walk_one(ext, uid, wanted, dry_run, act, census, deadlines)
    return actions


def _walk_one(
    ext: Extension,
    uid: str,
    wanted: set[Status],
    dry_run: bool,
    act: Any,
    census: Counter[str] | None,
    deadlines: bool = False,
) -> list[RecoveryAction]:
    manager = ext.session(uid)
    try:
        instances = manager.instances
    except CorruptSession as exc:  # only that session: the others are handled
        return [RecoveryAction(uid, "-", "corrupt", "skipped", str(exc), dry_run)]
    if census is not None:
        census.update(instance.status.value for instance in instances.values())
    missed = missed_deadlines(instances, time.time()) if deadlines else {}
    if missed:
        ext.storage.index_deadlines(uid, missed)
    actions: list[RecoveryAction] = []
    for instance in instances.values():
        if instance.status not in wanted:
            continue
        try:
            action, reason = act(manager, instance)
        except (IllegalTransition, StaleDispatch, UnknownInstance) as exc:
            action, reason = "skipped", f"changed meanwhile ({exc})"
        actions.append(RecoveryAction(uid, instance.name, instance.status.value, action, reason, dry_run))
    return actions


#: Seconds past its deadline after which an instance still ``unstarted`` was
#: missed by the deadline index (its producer died between its commit and
#: the index write): the recovery sweep indexes it again.
MISSED_AFTER = 60.0


def missed_deadlines(instances: Mapping[str, Instance], now: float) -> dict[str, float]:
    """The unstarted instances whose deadline passed more than
    :data:`MISSED_AFTER` seconds ago (name -> deadline)."""
    missed: dict[str, float] = {}
    for name, instance in instances.items():
        due = instance.metadata.get("deadline")
        if instance.status is Status.UNSTARTED and isinstance(due, (int, float)) and due < now - MISSED_AFTER:
            missed[name] = float(due)
    return missed


def _describe_loss(lost: Mapping[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(lost.get("first_seen") or 0)))
    return (
        f"storage lost data: {lost.get('messages', 0)} message(s) since {since} named instances it no longer "
        f"holds (e.g. {lost.get('example')}), sent when it held epoch(s) {', '.join(lost.get('epochs') or [])}; "
        "it was emptied or restored (a Redis without persistence restarted?): restore it from a backup, or fire "
        "those sessions' triggers again"
    )
