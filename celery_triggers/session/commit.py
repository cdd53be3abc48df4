"""How an operation becomes durable and then visible: its storage
transaction (the engine on what it needs; task ids for what became
ready), then, after the commit, its messages (grouped by runner) and, in a
thread running in-process runners, the work they queued once the outermost
operation is done."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..core.config import Configuration, TaskConfig
from ..core.dispatch import Dispatch
from ..core.errors import DispatchError
from ..core.operations import Operation
from ..core.state import Changes, Instance
from ..storage import SessionTxn, StorageBackend
from .host import Host

__all__ = ["Body", "batched", "dispatch", "ran_in_caller", "send", "send_after_commit", "transaction"]

#: A transaction body: run on a session's transaction (perhaps several
#: times, on conflicts), it returns the changes it wrote and the configs used.
Body = Callable[[SessionTxn], tuple[Changes, Configuration]]

logger = logging.getLogger(__name__)

#: Nesting depth of session operations in this thread (a hook may fire).
_depth = threading.local()


def transaction(host: Host, operation: Operation, now: Callable[[], float]) -> tuple[Body, tuple[Any, ...]]:
    """The transaction body of ``operation``, and what to read with the
    first read: what the app-wide configuration says it needs (a session's
    own configs may need more: read lazily then)."""
    app_configs = host.configs
    guess = operation.needs(app_configs)

    def body(txn: SessionTxn) -> tuple[Changes, Configuration]:
        configs = host.configs_with(txn.read_configs())
        needs = guess if configs is app_configs else operation.needs(configs)
        changes = operation.apply(txn.load(needs), configs, now())
        for name in changes.ready:
            changes.instances[name].metadata.setdefault("task_id", str(uuid.uuid4()))
        txn.write(changes)
        return changes, configs

    return body, (*operation.prefetch, *guess.waiting)


def dispatch(
    host: Host, uid: str, backend: StorageBackend, instances: list[Instance], configs: Mapping[str, TaskConfig]
) -> None:
    """Hand each ready instance to its runner (every runner gets its
    instances, whatever another did); one :class:`DispatchError` naming
    every instance a broker refused. When the operation joined the
    caller's database transaction, only once that commits (see
    :func:`send_after_commit`)."""
    if not instances:
        return
    if backend.after_caller_commit(lambda: send_after_commit(host, uid, backend, instances, configs)):
        return
    send(host, uid, backend, instances, configs)


def send_after_commit(
    host: Host, uid: str, backend: StorageBackend, instances: list[Instance], configs: Mapping[str, TaskConfig]
) -> None:
    """The messages of an operation that joined the caller's transaction,
    sent when it committed. Nobody waits for them to raise: a refusal is
    logged, and the instances stay ``scheduled`` for the recovery sweep."""
    try:
        with batched(host):
            send(host, uid, backend, instances, configs)
    except DispatchError as exc:
        logger.error(
            "celery-triggers: session %r: after the commit, the broker refused %s; they stay scheduled "
            "for the recovery sweep (%s)",
            uid,
            exc.instances,
            exc,
        )
    except Exception:  # an extension never breaks its host's commit
        logger.exception(
            "celery-triggers: session %r: sending %d message(s) after the commit failed", uid, len(instances)
        )


def send(
    host: Host, uid: str, backend: StorageBackend, instances: list[Instance], configs: Mapping[str, TaskConfig]
) -> None:
    """:func:`dispatch`, now."""
    by_runner: dict[str, list[Dispatch]] = {}
    alias = host.alias_of(backend)
    runners = {name: host.runner(name) for name in {configs[i.task].using or host.default_runner for i in instances}}
    # Messages carry the storage's epoch (read once per process), in-process work needs none.
    epoch = host.epoch_of(backend) if any(r.sends_messages for r in runners.values()) else None
    for instance in instances:
        config = configs[instance.task]
        runner = config.using or host.default_runner
        by_runner.setdefault(runner, []).append(Dispatch(uid, instance, config, alias, epoch))
    failures: list[DispatchError] = []
    for runner_name, items in by_runner.items():
        try:
            runners[runner_name].dispatch(items)
        except DispatchError as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        names = [name for exc in failures for name in exc.instances]
        raise DispatchError("; ".join(str(exc) for exc in failures), names)


def ran_in_caller(host: Host) -> bool:
    """Whether a runner of ``host`` runs tasks in the caller's thread (the
    eager runner): then a finished operation's instances have already run."""
    return any(getattr(runner, "runs_in_caller", False) for runner in host.active_runners())


@contextmanager
def batched(host: Host) -> Iterator[None]:
    """Run in-process runners' queued work only when the outermost
    operation (hooks included) is done, as a worker would see it."""
    depth = getattr(_depth, "value", 0)
    _depth.value = depth + 1
    try:
        yield
    finally:
        _depth.value = depth
    if depth == 0:
        for runner in host.active_runners():
            runner.drain()
