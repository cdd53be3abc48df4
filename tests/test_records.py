"""The stored instance record: compact, lossless (to the millisecond), and
0.1.0 records still read."""

from __future__ import annotations

import json

import pytest

from celery_triggers import resolve_storage
from celery_triggers.core.errors import CorruptSession
from celery_triggers.core.state import Instance, Status
from celery_triggers.storage.records import decode_instance, encode_instance

from .servers import RedisServer


def _instance(**metadata: object) -> Instance:
    return Instance("t_score", 7, Status.SCHEDULED, {"go": {"x": [1, 2]}}, None, dict(metadata), [], ["done"])


def test_a_record_round_trips_and_leaves_out_what_its_key_says() -> None:
    meta = {
        "created_at": 1795854188.1234,
        "scheduled_at": 1795854188.5,
        "task_id": "abc",
        "hostname": "w1",
        "exception": "boom",
    }
    text = encode_instance(_instance(**meta))
    data = json.loads(text)
    assert "task" not in data and "number" not in data and "t_score" not in text
    assert data["c"] == 1795854188123 and data["d"] == 377  # integer ms, relative to created
    assert text.endswith('"s":"scheduled"}')
    back = decode_instance("s1", "t_score#7", text)
    assert (back.task, back.number, back.status, back.kwargs, back.awaiting) == (
        "t_score",
        7,
        Status.SCHEDULED,
        {"go": {"x": [1, 2]}},
        ["done"],
    )
    assert back.metadata["scheduled_at"] == pytest.approx(1795854188.5, abs=1e-3)
    assert back.metadata["exception"] == "boom" and back.metadata["task_id"] == "abc"


def test_a_repeated_field_reads_as_its_last_occurrence() -> None:
    back = decode_instance("s1", "t_a#0", '{"c":1000,"n":1,"s":"scheduled","n":2,"b":5,"s":"running"}')
    assert back.status is Status.RUNNING and back.metadata["attempts"] == 2 and back.metadata["started_at"] == 1.005


def test_a_0_1_0_record_is_still_read() -> None:
    old = {"task": "t_a", "number": 3, "status": "finished", "kwargs": {}, "result": 5, "metadata": {"x": 1}}
    back = decode_instance("s1", "t_a#3", json.dumps(old))
    assert (back.name, back.status, back.result, back.metadata) == ("t_a#3", Status.FINISHED, 5, {"x": 1})


@pytest.mark.parametrize("text", ["[1]", '{"s":"nope"}', "{", '{"k":{}}'])
def test_a_malformed_record_names_its_session_and_instance(text: str) -> None:
    with pytest.raises(CorruptSession, match=r"session 's1': stored instance 't_a#0'"):
        decode_instance("s1", "t_a#0", text)


def test_redis_start_appends_to_a_compact_record_and_takes_the_generic_path_for_an_old_one(
    redis_server: RedisServer,
) -> None:
    backend = resolve_storage(f"{redis_server.url}?prefix=records")
    new = backend.bind("new")
    new.atomic(lambda txn: txn.write_raw({}, {"t_a": {"name": "t_a", "next_number": 1}}, {"t_a#0": _sched("tok")}))
    before, after, _ = new.start("t_a#0", "tok", 1795854190.0, track=True, metadata={"hostname": "w1"})
    assert (before.status, after.status) == (Status.SCHEDULED, Status.RUNNING)
    stored = backend.instance("new", "t_a#0")
    assert stored.metadata["hostname"] == "w1" and stored.metadata["attempts"] == 1
    assert stored.metadata["started_at"] == 1795854190.0 and stored.metadata["created_at"] == 1795854188.0
    raw = backend.client.hget(backend.keys("new")[1], "t_a#0")  # type: ignore[attr-defined]
    assert raw.endswith(b'"b":2000,"n":1,"h":"w1","s":"running"}')  # appended by the script, not re-encoded

    old = backend.bind("old")
    old.atomic(lambda txn: txn.write_raw({}, {"t_a": {"name": "t_a", "next_number": 1}}, {}))
    legacy = {"task": "t_a", "number": 0, "status": "scheduled", "kwargs": {}, "result": None}
    legacy["metadata"] = {"task_id": "tok"}
    inst_key = backend.keys("old")[1]  # type: ignore[attr-defined]
    backend.client.hset(inst_key, "t_a#0", json.dumps(legacy))  # type: ignore[attr-defined]
    _, after, _ = old.start("t_a#0", "tok", 1795854190.0, track=True, metadata={"hostname": "w1"})
    assert after.status is Status.RUNNING and backend.instance("old", "t_a#0").metadata["hostname"] == "w1"
    backend.close()


def _sched(token: str) -> Instance:
    return Instance("t_a", 0, Status.SCHEDULED, {}, None, {"created_at": 1795854188.0, "task_id": token})
