"""The pure rules of the lifecycle: dispatch tokens (a re-send adds one,
the first message to start wins), a lost run and a revoked message, and
when a lease is live or a scheduled instance due for a re-send."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_triggers import IllegalTransition, StaleDispatch
from celery_triggers.core import engine
from celery_triggers.core.config import TaskConfig, parse_config
from celery_triggers.core.engine.lifecycle import MAX_TOKENS
from celery_triggers.core.leases import Heartbeat, lease_state, resend_due
from celery_triggers.core.state import Changes, Instance, Snapshot, Status

NOW = 1_000.0


def scheduled(**metadata: object) -> Snapshot:
    instance = Instance(
        "t_x", 0, Status.SCHEDULED, {"go": {}}, None, {"task_id": "T1", "scheduled_at": NOW, **metadata}
    )
    return Snapshot(instances={"t_x#0": instance})


def apply(snapshot: Snapshot, changes: Changes) -> Snapshot:
    merged = snapshot.copy()
    merged.instances.update(changes.instances)
    return merged


def test_a_resend_adds_a_token_and_the_first_message_to_start_wins() -> None:
    snap = apply(scheduled(), engine.redispatch(scheduled(), "t_x#0", "T2", NOW + 1))
    resent = snap.instances["t_x#0"]
    assert resent.metadata["task_id"] == "T2" and resent.metadata["tokens"] == ["T1"]
    assert engine.tokens_of(resent) == ["T2", "T1"] and resent.metadata["dispatches"] == 2
    started = apply(snap, engine.start(snap, "t_x#0", NOW + 2, "T1"))  # the original was first
    assert started.instances["t_x#0"].status is Status.RUNNING
    assert (
        started.instances["t_x#0"].metadata["task_id"] == "T1" and "tokens" not in started.instances["t_x#0"].metadata
    )
    with pytest.raises(StaleDispatch, match="message T2 is not one of its current dispatches"):
        engine.start(started, "t_x#0", NOW + 3, "T2")  # the copy runs nothing
    assert engine.start(started, "t_x#0", NOW + 3, "T1").instances["t_x#0"].metadata["attempts"] == 2  # redelivery
    done = apply(started, engine.finish(started, {"t_x": _config()}, "t_x#0", {"ok": 1}, NOW + 4, "T1"))
    assert done.instances["t_x#0"].status is Status.FINISHED


def test_a_resend_expecting_a_token_that_changed_meanwhile_is_refused() -> None:
    snap = apply(scheduled(), engine.redispatch(scheduled(), "t_x#0", "T2", NOW + 1))
    with pytest.raises(StaleDispatch, match="re-sent meanwhile"):
        engine.redispatch(snap, "t_x#0", "T3", NOW + 2, expected="T1")


def test_tokens_are_bounded() -> None:
    snap = scheduled()
    for n in range(40):
        snap = apply(snap, engine.redispatch(snap, "t_x#0", f"R{n}", NOW + n))
    assert len(engine.tokens_of(snap.instances["t_x#0"])) == MAX_TOKENS


def test_a_lost_run_is_resent_or_failed() -> None:
    running = apply(scheduled(), engine.start(scheduled(), "t_x#0", NOW, "T1"))
    resent = engine.lost(running, "t_x#0", "T1", NOW + 60, {}, resend_token="T9").instances["t_x#0"]
    assert resent.status is Status.SCHEDULED and engine.tokens_of(resent) == ["T9", "T1"]
    failed = engine.lost(running, "t_x#0", "T1", NOW + 60, {"exc_type": "WorkerLost"}).instances["t_x#0"]
    assert failed.status is Status.FAILED and failed.metadata["exc_type"] == "WorkerLost"
    with pytest.raises(StaleDispatch):
        engine.lost(running, "t_x#0", "T0", NOW + 60, {})  # another run's token: changes nothing
    with pytest.raises(IllegalTransition):
        engine.lost(scheduled(), "t_x#0", "T1", NOW + 60, {})


def test_a_revoked_message_fails_a_run_or_abandons_the_last_of_its_messages() -> None:
    running = apply(scheduled(), engine.start(scheduled(), "t_x#0", NOW, "T1"))
    error = {"exc_type": "TaskRevokedError"}
    failed = engine.revoke(running, "t_x#0", "T1", NOW, terminated=True, error=error).instances["t_x#0"]
    assert failed.status is Status.FAILED and failed.can_replay
    resent = apply(scheduled(), engine.redispatch(scheduled(), "t_x#0", "T2", NOW + 1))
    one_left = engine.revoke(resent, "t_x#0", "T1", NOW, terminated=False, error={"revoked": "revoked"})
    kept = one_left.instances["t_x#0"]
    assert kept.status is Status.SCHEDULED and engine.tokens_of(kept) == ["T2"] and one_left.ready == []
    last = engine.revoke(scheduled(), "t_x#0", "T1", NOW, terminated=False, error={"revoked": "revoked"})
    abandoned = last.instances["t_x#0"]
    assert abandoned.status is Status.ABANDONED and abandoned.metadata["abandoned_reason"] == "revoked"
    with pytest.raises(IllegalTransition):
        engine.revoke(running, "t_x#0", "T1", NOW, terminated=False, error={})  # a running task is not recalled


def _config() -> TaskConfig:
    return parse_config("t_x", {"after": ["go"], "run": "x"})


def running(**metadata: object) -> Instance:
    meta = {"task_id": "T1", "hostname": "w1", "started_at": NOW, "lease": 10, **metadata}
    return Instance("t_x", 0, Status.RUNNING, {}, None, meta)


@pytest.mark.parametrize(
    ("instance", "beats", "now", "state"),
    [
        (running(), {}, NOW + 29, "live"),  # just started: not in a heartbeat yet
        (running(), {}, NOW + 31, "expired"),  # no heartbeat from its worker
        (running(), {"w1": Heartbeat("w1", NOW + 50, 10, frozenset({("s", "t_x#0", "T1")}))}, NOW + 70, "live"),
        (running(), {"w1": Heartbeat("w1", NOW + 50, 10, frozenset({("s", "t_x#0", "T1")}))}, NOW + 81, "expired"),
        (running(), {"w1": Heartbeat("w1", NOW + 50, 10, frozenset())}, NOW + 60, "expired"),  # no longer runs it
        (running(), {"w1": Heartbeat("w1", NOW + 50, 10, frozenset({("s", "t_x#0", "T0")}))}, NOW + 60, "expired"),
        (running(lease=None), {}, NOW + 10**6, "legacy"),  # a worker without leases started it
    ],
)
def test_a_lease_is_live_while_its_worker_renews_it(
    instance: Instance, beats: dict[str, Heartbeat], now: float, state: str
) -> None:
    assert lease_state("s", instance, beats, now) == state


def test_a_heartbeat_round_trips_as_kwargs() -> None:
    beat = Heartbeat("w1", NOW, 10, frozenset({("s", "t_x#0", "T1"), ("é", "t_y#2", "T2")}))
    assert Heartbeat.from_kwargs("w1", beat.to_kwargs()) == beat


def test_a_scheduled_instance_is_resent_after_the_age_doubled_per_resend() -> None:
    first = scheduled().instances["t_x#0"]
    assert not resend_due(first, NOW + 299, 300) and resend_due(first, NOW + 300, 300)
    twice = scheduled(dispatches=3, redispatched_at=NOW).instances["t_x#0"]
    assert not resend_due(twice, NOW + 1199, 300) and resend_due(twice, NOW + 1200, 300)
    assert not resend_due(running(), NOW + 10**6, 300)


def test_celerys_test_worker_starts_and_stops_the_lease_keeper_and_the_sweeper(tmp_path: Path) -> None:
    """Celery's in-process test worker (``start_worker``) runs the bootsteps
    and terminates them: no keeper or sweeper thread outlives it."""
    import threading

    from celery.contrib.testing.worker import start_worker

    from .conftest import make_app

    app = make_app(f"sqlite:///{tmp_path / 's.sqlite3'}", runner="celery", triggers_heartbeat_interval=0.2)
    names = ("celery-triggers-leases", "celery-triggers-recovery")
    with start_worker(app, pool="solo", perform_ping_check=False):
        running = {t.name for t in threading.enumerate()}
        assert set(names) <= running, running
    assert not [t for t in threading.enumerate() if t.name in names and t.is_alive()]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")  # on purpose
def test_a_fork_waits_for_the_storage_call_a_worker_thread_is_in() -> None:
    """The lease keeper's and the sweeper's storage calls hold the fork
    gate: a pool process is not forked in the middle of one (it would
    inherit the call's locks, held by a thread it does not have)."""
    import os
    import threading

    from celery_triggers.worker import forks

    forks.install()
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def storage_call() -> None:
        with forks.storage_io():
            held.set()
            release.wait(10)
            order.append("call done")

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        order.append("forked")
        os.waitpid(pid, 0)

    caller = threading.Thread(target=storage_call)
    caller.start()
    assert held.wait(10)
    forker = threading.Thread(target=fork)
    forker.start()
    forker.join(timeout=0.3)
    assert forker.is_alive() and order == [], "the fork waits at the gate"
    release.set()
    caller.join(10)
    forker.join(10)
    assert order == ["call done", "forked"]
