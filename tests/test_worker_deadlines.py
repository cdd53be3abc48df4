"""Deadlines on a real prefork worker (Redis broker, Redis storage): with no
further activity in the session, a passed deadline abandons the instance
and fires ``on_timeout`` once, which cascades; a shipment ready in time is
never touched; a deadline that passed while no worker ran fires when one
comes back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from celery_triggers import Status
from celery_triggers.core.state import Instance

from .conftest import Worker, make_app, wait_for
from .servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.worker]


@pytest.fixture(scope="module")
def urls(redis_server: RedisServer) -> tuple[str, str]:
    """(broker, storage) on the tests' Redis server, both new to this module."""
    base = redis_server.url.rsplit("/", 1)[0]
    return f"{base}/{2 + uuid.uuid4().int % 10}", f"{redis_server.url}?prefix=dl{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def producer(urls: tuple[str, str]) -> Celery:
    """The application side: the deadline app's configs, broker and storage."""
    import tests.deadline_app

    broker, storage = urls
    app = make_app(storage=storage, runner="celery", broker_url=broker)
    app.triggers.configure({n: c.to_dict() for n, c in tests.deadline_app.app.triggers.configs.items()})
    return app


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, urls: tuple[str, str]) -> Iterator[Worker]:
    broker, storage = urls
    w = Worker(tmp_path_factory.mktemp("deadline-worker"), "tests.deadline_app", CT_BROKER=broker, CT_STORAGE=storage)
    w.start()
    yield w
    w.discard()


def instance(app: Celery, uid: str, name: str) -> Instance | None:
    found: Instance | None = app.triggers.session(uid).instances.get(name)
    return found


def status_of(app: Celery, uid: str, name: str) -> Status | None:
    found = instance(app, uid, name)
    return found.status if found is not None else None


def indexed(app: Celery, uid: str) -> list[tuple[str, str, float]]:
    """The session's entries in the deadline index, due or not."""
    return [e for e in app.triggers.storage.due_deadlines(time.time() + 1e9, 100_000) if e[0] == uid]


def test_a_passed_deadline_abandons_fires_on_timeout_once_and_cascades(producer: Celery, worker: Worker) -> None:
    uid = f"late-{uuid.uuid4().hex[:8]}"
    producer.triggers.session(uid).fire("paid", {"order": 7})
    created = instance(producer, uid, "t_ship#0")
    assert created is not None and indexed(producer, uid) == [(uid, "t_ship#0", created.metadata["deadline"])]

    wait_for(lambda: status_of(producer, uid, "t_escalate#0") is Status.FINISHED, 20, "the cascade of on_timeout")

    ship = instance(producer, uid, "t_ship#0")
    assert ship is not None and ship.status is Status.ABANDONED
    assert ship.metadata["abandoned_reason"] == "deadline" and ship.metadata["missing"] == ["shipped"]
    # Default precision: the sweep runs every second.
    assert 0 <= ship.metadata["abandoned_at"] - ship.metadata["deadline"] < 2.5
    late = instance(producer, uid, "t_late#0")
    assert late is not None and late.result == {"late": {"instance": "t_ship#0", "missing": ["shipped"]}}
    assert instance(producer, uid, "t_escalate#0").result == "escalated t_ship#0"  # type: ignore[union-attr]
    # Exactly once: nothing of the session is left for a later sweep, and one timeout ran.
    assert indexed(producer, uid) == []
    assert sorted(producer.triggers.session(uid).instances) == ["t_escalate#0", "t_late#0", "t_ship#0"]


def test_a_shipment_ready_in_time_is_never_touched(producer: Celery, worker: Worker) -> None:
    uid = f"met-{uuid.uuid4().hex[:8]}"
    session = producer.triggers.session(uid)
    session.fire("paid", {"order": 8})
    session.fire("shipped")
    wait_for(lambda: status_of(producer, uid, "t_ship#0") is Status.FINISHED, 20, "the shipment")

    wait_for(lambda: indexed(producer, uid) == [], 20, "the sweep to pass the deadline")  # swept: entry dropped

    ship = instance(producer, uid, "t_ship#0")
    assert ship is not None and ship.status is Status.FINISHED and ship.result == {"tracking": "T-8"}
    assert sorted(session.instances) == ["t_ship#0"]


def test_a_deadline_passed_while_no_worker_ran_fires_when_one_comes_back(
    producer: Celery, worker: Worker, tmp_path: Path
) -> None:
    uid = f"down-{uuid.uuid4().hex[:8]}"
    worker.discard()
    try:
        producer.triggers.session(uid).fire("paid", {"order": 9})
        created = instance(producer, uid, "t_ship#0")
        assert created is not None
        wait_for(lambda: time.time() > created.metadata["deadline"] + 1, 10, "the deadline to pass")
        assert status_of(producer, uid, "t_ship#0") is Status.UNSTARTED  # nobody swept
    finally:
        worker.start()

    wait_for(lambda: status_of(producer, uid, "t_escalate#0") is Status.FINISHED, 20, "the late timeout")
    ship = instance(producer, uid, "t_ship#0")
    assert ship is not None and ship.status is Status.ABANDONED and ship.metadata["abandoned_reason"] == "deadline"
    assert indexed(producer, uid) == []
