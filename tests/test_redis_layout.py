"""The Redis layout of format 2 (``storage/redis/layout.py``): records in
groups, long records alone, waiting lists in chunks, compact task ids at a
worker's start; sessions of the earlier layout read and moved over as they
are written; and what it saves."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import CorruptSession
from celery_triggers.core.engine import Needs
from celery_triggers.core.state import Instance, Status
from celery_triggers.storage import StorageBackend, resolve_storage
from celery_triggers.storage.records import compact_uuid
from celery_triggers.storage.redis.layout import ALONE, GROUP, LIST, key_prefix

from .conftest import make_app, storage_url_for

T0_MS = 1_796_083_200_000
TRIGGERS = ("x", "y")
#: Instance numbers the random writes use: several groups and waiting-list chunks.
NUMBERS = 2 * LIST + 40


def random_instance(rng: random.Random, number: int) -> Instance:
    """An instance of ``t_a`` in any status, some with a record longer than
    :data:`ALONE`, their times whole milliseconds (what a record keeps)."""
    status = rng.choice(list(Status))
    created = T0_MS + rng.randrange(10**6)
    meta: dict[str, Any] = {"created_at": created / 1000}
    if status is not Status.UNSTARTED:
        meta["scheduled_at"] = (created + rng.randrange(100)) / 1000
        meta["task_id"] = str(uuid.UUID(int=rng.getrandbits(128))) if rng.random() < 0.8 else f"tok-{number}"
    kwargs = {"go": {"n": number, "pad": "z" * rng.choice((0, 10, ALONE))}}
    result = {"n": number} if status is Status.FINISHED else None
    awaiting = sorted(rng.sample(TRIGGERS, rng.randrange(1, 3))) if status is Status.UNSTARTED else []
    return Instance("t_a", number, status, kwargs, result, meta, [], awaiting)


def store(backend: StorageBackend, uid: str, instances: list[Instance]) -> None:
    """Write ``instances`` as the engine does: each read first."""

    def write(txn: Any) -> None:
        txn.load(Needs(instances=frozenset(i.name for i in instances)))
        txn.write_raw({}, {"t_a": {"name": "t_a", "next_number": NUMBERS}}, {i.name: i for i in instances})

    backend.atomic(uid, write)


def waiting(backend: StorageBackend, uid: str, trigger: str) -> set[str]:
    snapshot = backend.read(uid, lambda txn: txn.load(Needs(waiting=frozenset({("t_a", trigger)}))))
    return set(snapshot.instances)


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
def test_random_writes_read_back_alike_by_name_by_session_and_by_waiting_list(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Given a session a previous release stored (records in fields of their
    own, the waiting index a sorted set), when instances are rewritten in
    any order, long and short, then every read path gives back what was
    written last, and what was rewritten left the earlier layout."""
    backend = resolve_storage(storage_url_for(kind, request, tmp_path))
    client: Any = backend.client  # type: ignore[attr-defined]
    uid = "shapes"
    keys = backend.keys(uid)  # type: ignore[attr-defined]
    rng = random.Random(20261201)
    model: dict[str, Instance] = {}
    store(backend, uid, [])  # the session's state
    for number in rng.sample(range(NUMBERS), 60):  # the earlier layout, as format 1 wrote it
        old = random_instance(rng, number)
        record = {"c": round(old.metadata["created_at"] * 1000), "k": old.kwargs, "s": old.status.value}
        if "task_id" in old.metadata:
            record["i"] = old.metadata["task_id"]
            record["d"] = round(old.metadata["scheduled_at"] * 1000) - record["c"]
        if old.result is not None:
            record["r"] = old.result
        if old.awaiting:
            record["a"] = old.awaiting
        client.hset(keys[1], old.name, json.dumps(record))
        for trigger in old.awaiting:
            client.zadd(keys[3], {key_prefix("t_a", trigger) + old.name: 0})
        model[old.name] = old
    rewritten: set[str] = set()
    for _ in range(120):
        batch = [random_instance(rng, n) for n in rng.sample(range(NUMBERS), rng.choice((1, 1, 2, 5, 12)))]
        store(backend, uid, batch)
        model.update((i.name, i) for i in batch)
        rewritten.update(i.name for i in batch)

    assert backend.instances(uid) == dict(sorted(model.items(), key=lambda kv: kv[1].number))
    for name, instance in model.items():
        assert backend.instance(uid, name) == instance, name
    for trigger in TRIGGERS:
        expected = {n for n, i in model.items() if i.status is Status.UNSTARTED and trigger in i.awaiting}
        assert waiting(backend, uid, trigger) == expected, trigger
    fields = {f.decode() for f in client.hkeys(keys[1])}
    groups = {f"t_a#{n}" for n in range(0, NUMBERS, GROUP)}
    long = {n for n, i in model.items() if len(json.dumps(i.kwargs)) > ALONE}
    assert not (fields & rewritten) - groups, "a rewritten record left its field of the earlier layout"
    assert {f for f in fields if f.endswith("~")} == {f"{n}~" for n in long & rewritten}
    old_members = {m.decode().rsplit("\x00", 1)[1] for m in client.zrange(keys[3], 0, -1)}
    assert not old_members & rewritten, "a rewritten instance left the earlier waiting index"
    backend.close()


def test_a_thousand_instances_fit_the_original_frameworks_footprint(redis_server: Any) -> None:
    """The original framework stores 1,000 instances of a task in 164 B
    each when scheduled, 196 B when finished and 82 B while waiting (its
    cache storage on Redis); format 1 took 160, 240 and 246 B."""
    # Its messages go to a queue no worker takes (the memory broker).
    app = make_app(storage=f"{redis_server.url}?prefix=footprint", runner="celery", task_default_queue="footprint")
    app.triggers.configure(
        {
            "t_many": {"after": [], "andEvery": "item", "run": "bench.sink"},
            "t_wait": {"after": ["never"], "andEvery": "wait", "run": "bench.sink"},
        }
    )
    storage: Any = app.triggers.storage
    client = storage.client

    def size(uid: str) -> int:
        return sum(client.memory_usage(k, samples=0) or 0 for k in storage.keys(uid))

    per: dict[str, float] = {}
    for case, trigger in (("scheduled", "item"), ("waiting", "wait")):
        session = app.triggers.session(case)
        session.fire(trigger, {"i": 0})
        one = size(case)
        for i in range(1, 1000):
            session.fire(trigger, {"i": i})
        per[case] = (size(case) - one) / 999
        if case == "scheduled":
            for i in range(1000):
                name = f"t_many#{i}"
                token = session.instance(name).metadata["task_id"]
                session.start_instance(name, token, hostname="celery@bench-worker-1", celery_retries=0)
                session.finish_instance(name, token, {"i": i})
            per["finished"] = (size(case) - one) / 999
    assert per["scheduled"] <= 164 and per["finished"] <= 196 and per["waiting"] <= 82, per
    finished = app.triggers.session("scheduled").instances
    assert {i.status for i in finished.values()} == {Status.FINISHED} and finished["t_many#999"].result == {"i": 999}
    assert len(app.triggers.session("waiting").instances) == 1000


def test_a_fire_releases_every_chunk_of_a_long_waiting_list(redis_server: Any) -> None:
    """Given more instances waiting than a chunk holds, when their trigger
    fires, then every chunk is read and every instance scheduled, and the
    emptied lists leave nothing behind."""
    app = make_app(storage=f"{redis_server.url}?prefix=chunks", runner="celery", task_default_queue="chunks")
    app.triggers.configure({"t_wait": {"after": ["never"], "andEvery": "wait", "run": "bench.sink"}})
    session = app.triggers.session("long")
    count = 2 * LIST + 5
    for i in range(count):
        session.fire("wait", {"i": i})
    storage: Any = app.triggers.storage
    lists = {k.decode(): v.decode() for k, v in storage.client.hgetall(storage.keys("long")[4]).items()}
    pair = '["t_wait","never"]'
    assert lists[pair] == ",0,1,2,", "the pair's field names its chunks"
    assert [len(lists[f"{pair}#{c}"].strip(",").split(",")) for c in range(3)] == [LIST, LIST, 5]
    session.fire("never")
    instances = session.instances
    assert [i.status for i in instances.values()] == [Status.SCHEDULED] * count
    assert not storage.client.exists(storage.keys("long")[4]), "nothing waits: no list left"


def test_a_worker_started_by_an_earlier_message_owns_the_instance_with_its_token_as_stored(redis_server: Any) -> None:
    """A scheduled instance may be started by any of its messages; the start
    script writes the token that did, a UUID in 22 characters or any other
    token as it is, and either reads back as the instance's task id."""
    backend = resolve_storage(f"{redis_server.url}?prefix=tokens")
    newest, older = str(uuid.uuid4()), str(uuid.uuid4())
    for token in (older, "an-older-message"):
        uid = f"s-{token}"
        meta = {"created_at": T0_MS / 1000, "task_id": newest, "tokens": [older, "an-older-message"]}
        instance = Instance("t_a", 0, Status.SCHEDULED, {}, None, meta)
        store(backend, uid, [instance])
        _, after, _ = backend.bind(uid).start("t_a#0", token, T0_MS / 1000 + 1, track=True, metadata={"hostname": "w"})
        assert after.metadata["task_id"] == token
        stored = backend.instance(uid, "t_a#0")
        assert stored.status is Status.RUNNING and stored.metadata["task_id"] == token
        assert stored.metadata["started_at"] == T0_MS / 1000 + 1 and not stored.metadata.get("tokens")
        raw = backend.client.hget(backend.keys(uid)[1], "t_a#0")  # type: ignore[attr-defined]
        compact = compact_uuid(token)
        assert (f'"I":"{compact}"' if compact else '"I":null,"i":"an-older-message"').encode() in raw
    backend.close()


def test_a_session_stored_in_a_newer_format_is_refused_with_what_to_do(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for kind in ("redis", "sqlite", "django-locmem"):
        backend = resolve_storage(storage_url_for(kind, request, tmp_path))
        backend.atomic("future", lambda txn: txn.write_configs({}))
        if kind == "sqlite":
            import sqlite3

            with sqlite3.connect(backend.path) as conn:  # type: ignore[attr-defined]
                conn.execute("UPDATE ct_sessions SET format = 3 WHERE session = 'future'")
        else:
            client: Any = backend.client if kind == "redis" else backend.cache  # type: ignore[attr-defined]
            key = backend.keys("future")[0] if kind == "redis" else backend.layout.key("future", "state")  # type: ignore[attr-defined]
            state = json.loads(client.get(key))
            assert state["format"] == 2
            state["format"] = 3
            client.set(key, json.dumps(state))
        with pytest.raises(CorruptSession, match=r"session 'future' is stored in format 3, .* reads formats up to 2"):
            backend.atomic("future", lambda txn: txn.read_configs())
        with pytest.raises(CorruptSession, match=r"format 3"):
            backend.instances("future")
        backend.close()


def test_a_record_in_its_own_field_wins_until_the_instance_is_written_again(redis_server: Any) -> None:
    """Given a record an earlier release wrote in a field of its own over one
    already in its group (as a worker of that release may during an
    upgrade), then it is the one read, and the next write replaces it."""
    backend = resolve_storage(f"{redis_server.url}?prefix=own")
    client: Any = backend.client  # type: ignore[attr-defined]
    inst_key = backend.keys("own")[1]  # type: ignore[attr-defined]
    meta = {"created_at": T0_MS / 1000}
    first = [Instance("t_a", n, Status.SCHEDULED, {"v": {"by": "group"}}, None, meta) for n in range(3)]
    store(backend, "own", first)
    client.hset(inst_key, "t_a#1", json.dumps({"c": T0_MS, "k": {"v": {"by": "hand"}}, "s": "finished"}))
    assert backend.instance("own", "t_a#1").kwargs == {"v": {"by": "hand"}}
    assert backend.instances("own")["t_a#1"].status is Status.FINISHED

    again = Instance("t_a", 1, Status.RUNNING, {"v": {"by": "rewriting"}}, None, {"created_at": T0_MS / 1000})
    store(backend, "own", [again])
    assert backend.instance("own", "t_a#1") == again
    assert backend.instances("own") == {i.name: i for i in [first[0], again, first[2]]}
    assert not client.hexists(inst_key, "t_a#1"), "the earlier layout's field is gone"
    backend.close()
