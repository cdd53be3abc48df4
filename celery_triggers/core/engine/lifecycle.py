"""An instance's life once it was scheduled: the worker's start, finish
and failure, a retry the task asks for, the operator's replay, skip, status
override and re-dispatch. Each function takes plain data and returns
:class:`Changes` without touching its input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import IllegalTransition, StaleDispatch
from ..state import Changes, Instance, Snapshot, Status
from .work import Configs, Work, awaiting, config_of

__all__ = [
    "MAX_TOKENS",
    "cascade_kwargs",
    "fail",
    "finish",
    "lost",
    "redispatch",
    "replay",
    "replay_kwargs",
    "retry",
    "revoke",
    "set_status",
    "skip",
    "start",
    "tokens_of",
]


def cascade_kwargs(result: Any) -> dict[str, Any]:
    """The kwargs a finished instance fires its task name with."""
    return dict(result) if isinstance(result, Mapping) else {}


#: Most tokens a scheduled instance keeps (re-sends add one each; the oldest go first).
MAX_TOKENS = 16


def tokens_of(instance: Instance) -> list[str]:
    """The dispatch tokens that may start the instance: while it is
    scheduled, its newest one (``task_id``) and those of earlier sends
    still in a queue (``tokens``); once started, the one that started it."""
    current = instance.metadata.get("task_id")
    older = (instance.metadata.get("tokens") or []) if instance.status is Status.SCHEDULED else []
    return [str(t) for t in [current, *older] if t]


def _check_token(instance: Instance, token: str | None) -> None:
    """Refuse a message that is not one of the instance's dispatches."""
    if token is None:
        return
    valid = tokens_of(instance)
    if token not in valid:
        raise StaleDispatch(
            f"{instance.name}: message {token} is not one of its current dispatches "
            f"({', '.join(valid) or 'none recorded'})"
        )


def _taken_by(instance: Instance, token: str | None) -> dict[str, Any]:
    """The instance is now ``token``'s: its other messages run nothing."""
    instance.metadata.pop("tokens", None)
    return {} if token is None else {"task_id": token}


def start(
    snapshot: Snapshot, name: str, now: float, token: str | None = None, *, track: bool = True, **metadata: Any
) -> Changes:
    """A worker starts the instance's message ``token`` (``scheduled`` ->
    ``running``).

    Any of a scheduled instance's dispatch tokens may start it (the first
    message to start wins; its other messages then run nothing); another
    token raises :class:`StaleDispatch`. A redelivery of the message that
    started it (the worker died, or Celery retried it) finds the instance
    ``running`` and starts it again. With ``track`` false the start is only
    checked, nothing is written (the instance goes ``scheduled`` ->
    ``finished``, like Celery's ``task_track_started=False``).
    """
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled instance can start")
    _check_token(instance, token)
    if not track:
        return work.changes
    attempts = int(instance.metadata.get("attempts", 0)) + 1
    owner = _taken_by(instance, token)
    work.set_status(instance, Status.RUNNING, started_at=now, attempts=attempts, **owner, **metadata)
    return work.changes


def redispatch(snapshot: Snapshot, name: str, token: str, now: float, expected: str | None = None) -> Changes:
    """Give a ``scheduled`` instance one more dispatch token (its next
    message). Its earlier messages keep theirs: whichever starts first runs,
    so a queue backlog longer than a re-send's delay is never starved.
    ``expected``: the newest token the caller saw, so that two recoveries
    racing re-send it once."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is not Status.SCHEDULED:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled instance can be re-sent")
    if expected is not None and instance.metadata.get("task_id") != expected:
        raise StaleDispatch(f"{name}: re-sent meanwhile (its newest message is {instance.metadata.get('task_id')})")
    _resend(work, instance, token)
    return work.changes


def _resend(work: Work, instance: Instance, token: str, **metadata: Any) -> None:
    """``instance`` scheduled again with ``token`` added to its dispatches."""
    kept = tokens_of(instance) if instance.status is Status.SCHEDULED else []
    running = instance.metadata.get("task_id") if instance.status is Status.RUNNING else None
    older = [t for t in [*kept, running] if t][: MAX_TOKENS - 1]
    dispatches = int(instance.metadata.get("dispatches", 1)) + 1
    instance.metadata["tokens"] = older
    work.set_status(
        instance, Status.SCHEDULED, task_id=token, redispatched_at=work.now, dispatches=dispatches, **metadata
    )


def lost(
    snapshot: Snapshot, name: str, token: str, now: float, error: Mapping[str, Any], resend_token: str | None = None
) -> Changes:
    """The worker running the instance's message ``token`` is gone (its
    lease expired): with ``resend_token`` (the message will be delivered
    again, ``acks_late``), the instance is scheduled again with that token
    added (the broker's copy of ``token`` is then inert, or runs first:
    whichever starts first); else it is ``failed`` with ``error``."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is not Status.RUNNING:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a running instance can be lost")
    _check_token(instance, token)
    if resend_token is None:
        work.set_status(instance, Status.FAILED, failed_at=now, **error)
    else:
        _resend(work, instance, resend_token, lost_at=now)
    return work.changes


def revoke(
    snapshot: Snapshot, name: str, token: str, now: float, *, terminated: bool, error: Mapping[str, Any]
) -> Changes:
    """Celery revoked the message ``token``. Running under it (terminated):
    ``failed`` with ``error`` (replayable). Not started: that message will
    never run; when it was the instance's last, the instance is
    ``abandoned`` (reason: revoked) and never re-sent."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    _check_token(instance, token)
    if instance.status is Status.RUNNING and terminated:
        work.set_status(instance, Status.FAILED, failed_at=now, **error)
    elif instance.status is Status.SCHEDULED and not terminated:
        left = [t for t in tokens_of(instance) if t != token]
        if left:
            instance.metadata["tokens"] = left[1:]
            work.set_status(instance, Status.SCHEDULED, task_id=left[0], revoked_tokens=[token])
            work.changes.ready.clear()  # its remaining messages are out already
        else:
            instance.metadata.pop("tokens", None)
            work.set_status(instance, Status.ABANDONED, abandoned_at=now, abandoned_reason="revoked", **error)
    else:
        raise IllegalTransition(f"{name} is {instance.status.value}; this revoke changes nothing")
    return work.changes


def finish(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    result: Any,
    now: float,
    token: str | None = None,
    **metadata: Any,
) -> Changes:
    """The instance's task returned ``result``: finish it and cascade, once.

    A second finish of the same instance (a redelivered message, a retried
    commit whose reply was lost) changes nothing, so the cascade happens
    exactly once. ``token``: the dispatch that ran (see :func:`start`).
    """
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is Status.FINISHED:
        return work.changes
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled or running instance can finish")
    _check_token(instance, token)
    instance.result = result
    work.set_status(instance, Status.FINISHED, finished_at=now, **_taken_by(instance, token), **metadata)
    work.fire(configs, instance.task, cascade_kwargs(result))
    return work.changes


def fail(snapshot: Snapshot, name: str, error: Mapping[str, Any], now: float, token: str | None = None) -> Changes:
    """The instance's task raised: record the exception, do not cascade.

    Failing an instance that this dispatch already failed changes nothing
    (a retried commit)."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is Status.FAILED and token is not None and instance.metadata.get("task_id") == token:
        return work.changes
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a scheduled or running instance can fail")
    _check_token(instance, token)
    work.set_status(instance, Status.FAILED, failed_at=now, **_taken_by(instance, token), **error)
    return work.changes


def replay_kwargs(
    instance: Instance,
    replacement: dict[str, dict[str, Any]] | None = None,
    update: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The kwargs a replay's clone gets: ``replacement`` instead of the
    instance's (the original framework's meaning), or the instance's with
    the triggers ``update`` names replaced (a per-trigger merge)."""
    source = instance.kwargs if replacement is None else replacement
    merged = {k: dict(v) for k, v in source.items()}
    merged.update({k: dict(v) for k, v in (update or {}).items()})
    return merged


def _clone(
    work: Work, configs: Configs, instance: Instance, kwargs: dict[str, dict[str, Any]] | None, **metadata: Any
) -> Instance:
    """Schedule a copy of ``instance``. As in the original framework, a
    replay runs whatever the task's ``unless`` says: it is an explicit
    decision."""
    config = config_of(configs, instance.task)
    source = instance.kwargs if kwargs is None else kwargs
    clone = work.create(config, {k: dict(v) for k, v in source.items()}, parent=instance.name, **metadata)
    instance.metadata["replayed_by"] = clone.name
    work.set_status(clone, Status.SCHEDULED, scheduled_at=work.now)
    return clone


def replay(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    replacement_kwargs: dict[str, dict[str, Any]] | None,
    now: float,
    kwargs_update: dict[str, dict[str, Any]] | None = None,
) -> Changes:
    """Mark a failed instance ``replayed`` and schedule a clone ``t_x#N+1``
    (its kwargs: :func:`replay_kwargs`)."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status is not Status.FAILED:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a failed instance can be replayed")
    work.set_status(instance, Status.REPLAYED, replayed_at=now)
    _clone(work, configs, instance, replay_kwargs(instance, replacement_kwargs, kwargs_update))
    return work.changes


def retry(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    error: Mapping[str, Any],
    replacement_kwargs: dict[str, dict[str, Any]] | None,
    countdown: float | None,
    now: float,
    **metadata: Any,
) -> Changes:
    """A running task asked to be retried: mark it ``replayed`` (with the
    error that caused it) and schedule a clone after ``countdown`` seconds."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    if instance.status not in (Status.SCHEDULED, Status.RUNNING):
        raise IllegalTransition(f"{name} is {instance.status.value}; only a running instance can retry")
    work.set_status(instance, Status.REPLAYED, replayed_at=now, **error, **metadata)
    retries = int(instance.metadata.get("retries", 0)) + 1
    extra = {"countdown": countdown} if countdown else {}
    _clone(work, configs, instance, replacement_kwargs, retries=retries, **extra)
    return work.changes


def skip(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    cascade: bool,
    result: Any,
    now: float,
    *,
    own: bool = False,
    **metadata: Any,
) -> Changes:
    """Mark a failed instance ``skipped`` (or, with ``own``, a running one
    that skips itself); optionally cascade as if it had returned ``result``."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    allowed = {Status.FAILED, Status.RUNNING, Status.SCHEDULED} if own else {Status.FAILED}
    if instance.status not in allowed:
        raise IllegalTransition(f"{name} is {instance.status.value}; only a failed instance can be skipped")
    instance.result = result
    work.set_status(instance, Status.SKIPPED, skipped_at=now, **metadata)
    if cascade:
        work.fire(configs, instance.task, cascade_kwargs(result))
    return work.changes


def set_status(
    snapshot: Snapshot,
    configs: Configs,
    name: str,
    status: Status | None,
    metadata: Mapping[str, Any] | None,
    cascade: bool,
    kwargs: dict[str, Any] | None,
    now: float,
) -> Changes:
    """Operator override: force a status (None: keep it) and merge
    ``metadata``, optionally cascading ``kwargs``.

    Forcing ``scheduled`` on an instance that was not scheduled sends it
    (with a new dispatch token); an instance already scheduled keeps its
    message (:func:`redispatch` sends another). ``cascade`` fires the
    instance's task name only when the status changes, so repeating an
    override never cascades twice."""
    work = Work(snapshot, now)
    instance = work.instance(name)
    old = instance.status
    new = old if status is None else status
    work.set_status(instance, new, **dict(metadata or {}))
    if new is Status.UNSTARTED and instance.task in configs:
        instance.awaiting = awaiting(configs[instance.task], instance)
    work.changes.ready.clear()
    if new is Status.SCHEDULED and old is not Status.SCHEDULED:
        instance.metadata.pop("task_id", None)  # a new message: a new token
        work.changes.ready.append(name)
    if cascade and new is not old:
        work.fire(configs, instance.task, kwargs or {})
    return work.changes
