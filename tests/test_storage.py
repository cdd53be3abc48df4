"""One contract, every backend: each storage proves the same behaviour."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from celery_triggers import CorruptSession, InvalidSession, StorageBackend, StorageError
from celery_triggers.core.engine import Needs
from celery_triggers.core.state import Changes, Instance, Status, TaskRecord, TriggerRecord
from celery_triggers.storage import resolve_storage


def changes(*instances: Instance, triggers: tuple[str, ...] = (), tasks: tuple[str, ...] = ()) -> Changes:
    """Records as the engine writes them: with the task record of every
    instance's task (its instance counter)."""
    tasks = tasks or tuple({i.task for i in instances})
    return Changes(
        triggers={t: TriggerRecord(t, {"k": t}, 1) for t in triggers},
        tasks={t: TaskRecord(t, next_number=3) for t in tasks},
        instances={i.name: i for i in instances},
    )


def rewrite(instance: Instance) -> Any:
    """An operation that reads ``instance`` as stored, then writes it anew."""

    def op(txn: Any) -> None:
        txn.load(Needs(instances=frozenset({instance.name})))
        txn.write(changes(instance))

    return op


def write_with_go(instance: Instance) -> Any:
    def op(txn: Any) -> None:
        txn.write(changes(instance, triggers=("go",)))

    return op


def test_an_unknown_session_loads_empty(backend: StorageBackend) -> None:
    snapshot = backend.atomic("nobody", lambda txn: txn.load(Needs(frozenset({"a"}), frozenset({"t"}))))
    assert snapshot.triggers == {} and snapshot.tasks == {} and snapshot.instances == {}
    assert backend.instances("nobody") == {}
    assert "nobody" not in backend.sessions()


def test_records_round_trip_and_load_reads_only_what_is_needed(backend: StorageBackend) -> None:
    waiting = Instance("t_a", 0, Status.UNSTARTED, {"x": {"v": 1}}, awaiting=["y", "z"])
    done = Instance("t_a", 1, Status.FINISHED, {}, {"r": [1, 2]}, {"finished_at": 1.5})
    other = Instance("t_b", 0, Status.UNSTARTED, awaiting=["y"])
    backend.atomic("s", lambda txn: txn.write(changes(waiting, done, other, triggers=("x", "y"), tasks=("t_a", "t_b"))))

    snap = backend.atomic(
        "s", lambda txn: txn.load(Needs(frozenset({"x"}), frozenset({"t_a"}), waiting=frozenset({("t_a", "y")})))
    )
    assert set(snap.instances) == {"t_a#0"}, "only the instances of the task that await the trigger"
    assert snap.instances["t_a#0"] == waiting
    nobody = backend.atomic("s", lambda txn: txn.load(Needs(waiting=frozenset({("t_a", "x")}))))
    assert nobody.instances == {}, "t_a#0 received x already"
    assert snap.triggers == {"x": TriggerRecord("x", {"k": "x"}, 1)}
    assert snap.tasks == {"t_a": TaskRecord("t_a", next_number=3)}

    named = backend.atomic("s", lambda txn: txn.load(Needs(instances=frozenset({"t_a#1"}))))
    assert named.instances == {"t_a#1": done}
    assert backend.instances("s") == {"t_a#0": waiting, "t_a#1": done, "t_b#0": other}


def test_the_unstarted_index_follows_status_changes(backend: StorageBackend) -> None:
    instance = Instance("t_a", 0, Status.UNSTARTED, awaiting=["x", "y"])
    backend.atomic("s", lambda txn: txn.write(changes(instance)))
    both = Needs(waiting=frozenset({("t_a", "x"), ("t_a", "y")}))
    assert set(backend.atomic("s", lambda txn: txn.load(both)).instances) == {"t_a#0"}
    # It received x: indexed under y only.
    received = Instance("t_a", 0, Status.UNSTARTED, {"x": {}}, awaiting=["y"])
    backend.atomic("s", rewrite(received))
    assert backend.atomic("s", lambda txn: txn.load(Needs(waiting=frozenset({("t_a", "x")})))).instances == {}
    assert set(backend.atomic("s", lambda txn: txn.load(both)).instances) == {"t_a#0"}
    scheduled = Instance("t_a", 0, Status.SCHEDULED, {"x": {}, "y": {}})
    backend.atomic("s", rewrite(scheduled))
    assert backend.atomic("s", lambda txn: txn.load(both)).instances == {}


def test_a_failed_transaction_changes_nothing(backend: StorageBackend) -> None:
    def op(txn):  # type: ignore[no-untyped-def]
        txn.write(changes(Instance("t_a", 0), triggers=("x",)))
        raise RuntimeError("boom in the middle")

    with pytest.raises(RuntimeError):
        backend.atomic("s", op)
    assert backend.instances("s") == {}
    assert backend.atomic("s", lambda txn: txn.load(Needs(frozenset({"x"})))).triggers == {}


def test_non_json_values_are_refused_and_change_nothing(backend: StorageBackend) -> None:
    bad = Instance("t_a", 0, Status.FINISHED, result={"when": object()})
    with pytest.raises(TypeError):
        backend.atomic("s", lambda txn: txn.write(changes(bad, triggers=("x",))))
    assert backend.instances("s") == {}


def test_session_configs_lifecycle_and_isolation(backend: StorageBackend) -> None:
    backend.atomic("s1", lambda txn: txn.write_configs({"t_a": {"after": ["x"], "run": "r"}}))
    backend.atomic("s1", lambda txn: txn.write(changes(Instance("t_a", 0))))
    backend.atomic("s2", lambda txn: txn.write(changes(Instance("t_a", 0), Instance("t_a", 1))))
    assert backend.atomic("s1", lambda txn: txn.read_configs()) == {"t_a": {"after": ["x"], "run": "r"}}
    assert backend.atomic("s2", lambda txn: txn.read_configs()) == {}
    assert backend.sessions() == ["s1", "s2"]
    assert set(backend.instances("s2")) == {"t_a#0", "t_a#1"}
    backend.delete_session("s1")
    assert backend.sessions() == ["s2"]
    assert backend.instances("s1") == {}
    assert set(backend.instances("s2")) == {"t_a#0", "t_a#1"}


@pytest.mark.parametrize(
    "uid",
    [
        "with space",
        "a:b:c",
        "{brace}",
        "ünïcødé-会话",
        "x" * 1024,
        "s'; DROP TABLE ct_instances; --",
        "inj\nFAKE-LINE injected",  # fire refuses it now; one stored earlier stays readable
    ],
)
def test_odd_session_uids_are_stored_and_isolated(backend: StorageBackend, uid: str) -> None:
    backend.atomic(uid, lambda txn: txn.write(changes(Instance("t_a", 0))))
    backend.atomic("plain", lambda txn: txn.write(changes(Instance("t_b", 0))))
    assert set(backend.instances(uid)) == {"t_a#0"}
    assert set(backend.instances("plain")) == {"t_b#0"}
    assert uid in backend.sessions()


@pytest.mark.parametrize("uid", ["", None, 42, "   ", "bad\udc80", "x" * 1025])
def test_a_bad_uid_is_refused_and_changes_nothing(backend: StorageBackend, uid: object) -> None:
    before = backend.sessions()
    for call in (
        lambda: backend.atomic(uid, lambda txn: txn.write(changes(Instance("t_a", 0)))),  # type: ignore[arg-type]
        lambda: backend.bind(uid),  # type: ignore[arg-type]
        lambda: backend.instances(uid),  # type: ignore[arg-type]
        lambda: backend.delete_session(uid),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidSession, match="session UID"):
            call()
    assert backend.sessions() == before


def corrupt_instance(backend: StorageBackend, uid: str, name: str, text: str) -> None:
    """Overwrite one stored instance record with ``text``, on any backend."""

    layout = getattr(backend, "redis", None)
    if layout is not None:  # a Redis-backed Django cache
        backend = layout
    kind = type(backend).__name__
    if kind == "MemoryStorage":
        backend._sessions[uid].instances[name] = text  # type: ignore[attr-defined]
    elif kind == "SQLiteStorage":
        conn = sqlite3.connect(backend.path)  # type: ignore[attr-defined]
        conn.execute("UPDATE ct_instances SET data = ? WHERE session = ? AND name = ?", (text, uid, name))
        conn.commit()
        conn.close()
    elif kind == "RedisStorage":
        backend.client.hset(backend.keys(uid)[1], name, text)  # type: ignore[attr-defined]
    elif kind == "DjangoDBStorage":  # the columns hold valid JSON: spoil what they mean
        from celery_triggers.contrib.django.models import TaskInstance

        rows = TaskInstance.objects.using(backend.alias).filter(session__uid=uid, name=name)  # type: ignore[attr-defined]
        assert rows.update(status=text[:16], kwargs=text) == 1
    else:
        backend.cache.set(backend.layout.instance(uid, name), text, timeout=None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"s":"no-such-status"}'])
def test_a_corrupt_instance_record_names_its_session_and_spoils_no_other(backend: StorageBackend, text: str) -> None:
    backend.atomic("spoilt", lambda txn: txn.write(changes(Instance("t_a", 0), Instance("t_a", 1))))
    backend.atomic("sound", lambda txn: txn.write(changes(Instance("t_a", 0))))
    corrupt_instance(backend, "spoilt", "t_a#1", text)
    with pytest.raises(CorruptSession, match=r"session 'spoilt': stored instance 't_a#1' is malformed"):
        backend.instances("spoilt")
    with pytest.raises(CorruptSession, match=r"session 'spoilt': stored instance 't_a#1'"):
        backend.instance("spoilt", "t_a#1")
    assert backend.instance("spoilt", "t_a#0").status is Status.UNSTARTED, "the session's other records read"
    assert set(backend.instances("sound")) == {"t_a#0"} and {"sound", "spoilt"} <= set(backend.sessions())


def test_corrupt_sqlite_data_names_the_session(tmp_path) -> None:  # type: ignore[no-untyped-def]
    backend = resolve_storage(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    backend.atomic("bad-session", lambda txn: txn.write(changes(Instance("t_a", 0), triggers=("x",))))
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    conn.execute("UPDATE ct_instances SET data = '{not json'")
    conn.execute("UPDATE ct_triggers SET data = '[]'")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptSession, match="bad-session"):
        backend.instances("bad-session")
    with pytest.raises(CorruptSession, match="session 'bad-session'"):
        backend.atomic("bad-session", lambda txn: txn.load(Needs(frozenset({"x"}), frozenset({"t_a"}))))


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("nope", "must look like 'scheme://...'"),
        ("ftp://x", "unknown storage scheme 'ftp'"),
        ("sqlite://", "SQLite storage URL must look like"),
        ("sqlite:///", "SQLite storage URL must look like"),
        ("sqlite:////missing/dir/x.db", "directory '/missing/dir' does not exist"),
        ("redis://:s3cret@127.0.0.1:6379/notanint", "database 'notanint' is not a number"),
        ("redis://u:s3cret@127.0.0.1:port/0", "its port is not a number"),
        ("redis+cluster://127.0.0.1:7000/2", "database 0 only"),
        ("django-cache://default?lock=maybe", "option lock must be 'auto' or 'add'"),
        ("django-cache://default?lock_timeout=soon", "could not convert string to float"),
        ("ftp://u:s3cret@host/x", "unknown storage scheme 'ftp'"),
    ],
)
def test_bad_storage_urls_name_the_part_at_fault(url: str, part: str) -> None:
    from celery_triggers.core.errors import ConfigurationError, InvalidStorageURL

    with pytest.raises(InvalidStorageURL, match=re.escape(part)) as caught:
        resolve_storage(url)
    assert isinstance(caught.value, ConfigurationError) and isinstance(caught.value, StorageError)
    assert "s3cret" not in str(caught.value)


def test_resuming_from_a_stale_commit_rereads_and_loses_nothing(backend: StorageBackend) -> None:
    """A transaction may start from what its storage object's previous commit
    left (``resume``); if another writer committed since, it must notice."""
    mine, theirs = backend.bind("shared"), backend.bind("shared")

    def add(trigger: str) -> Any:
        def op(txn: Any) -> None:
            snapshot = txn.load(Needs(frozenset({"count"})))
            record = snapshot.triggers.get("count") or TriggerRecord("count")
            record.count += 1
            record.kwargs = {**record.kwargs, trigger: True}
            txn.write(Changes(triggers={"count": record}))

        return op

    mine.atomic(add("a"))
    theirs.atomic(add("b"))  # mine's cached view is now stale
    mine.atomic(add("c"), resume=True)
    mine.atomic(add("d"), resume=True)  # fresh cache: may skip the read
    final = backend.atomic("shared", lambda txn: txn.load(Needs(frozenset({"count"})))).triggers["count"]
    assert final.count == 4
    assert final.kwargs == {"a": True, "b": True, "c": True, "d": True}


def test_the_worker_start_checks_status_and_token_on_every_backend(backend: StorageBackend) -> None:
    from celery_triggers import IllegalTransition, StaleDispatch, UnknownInstance

    tricky = {"go": {"status": "scheduled", "~start": {"attempts": 99}, "q": '","status":"running'}}
    queued = Instance('t_"x"', 0, Status.SCHEDULED, tricky, None, {"task_id": "T1", "created_at": 1.0})
    waiting = Instance('t_"x"', 1, Status.UNSTARTED, {})
    backend.atomic("s", lambda txn: txn.write(changes(queued, waiting, tasks=('t_"x"',))))
    meta = {"hostname": "w1", "celery_retries": 0}

    with pytest.raises(StaleDispatch, match="message T0 is not one of its current dispatches"):
        backend.start("s", queued.name, "T0", 5.0, track=True, metadata=meta)
    with pytest.raises(IllegalTransition, match="is unstarted"):
        backend.start("s", waiting.name, "T1", 5.0, track=True, metadata=meta)
    with pytest.raises(UnknownInstance):
        backend.start("s", 't_"x"#7', "T1", 5.0, track=True, metadata=meta)
    assert backend.instance("s", queued.name) == queued, "refused starts change nothing"

    before, after, configs, _ = backend.start("s", queued.name, "T1", 5.0, track=False, metadata=meta)
    assert before == after == queued and configs == {}
    assert backend.instance("s", queued.name) == queued, "an untracked start writes nothing"

    before, after, _, _ = backend.start("s", queued.name, "T1", 5.0, track=True, metadata=meta)
    assert before.status is Status.SCHEDULED and after.status is Status.RUNNING
    expected = {"task_id": "T1", "created_at": 1.0, "started_at": 5.0, "attempts": 1, **meta}
    assert after.metadata == expected and after.kwargs == tricky
    assert backend.instance("s", queued.name) == after
    # A redelivery of the same message starts it again: one more attempt.
    before, again, _, _ = backend.start("s", queued.name, "T1", 6.5, track=True, metadata={"hostname": "w2"})
    assert before.status is Status.RUNNING
    assert again.metadata == {**expected, "started_at": 6.5, "attempts": 2, "hostname": "w2"}
    assert backend.instance("s", queued.name) == again
    # What a later transaction writes back is the plain record.
    backend.atomic(
        "s", lambda txn: txn.write(changes(Instance(again.task, 0, Status.FINISHED, tricky, 1, again.metadata)))
    )
    assert backend.instance("s", queued.name).metadata == again.metadata


def test_purge_deletes_idle_sessions_and_keeps_busy_and_recent_ones(backend: StorageBackend) -> None:
    import time

    done = Instance("t_a", 0, Status.FINISHED, {}, 1)
    busy = Instance("t_a", 0, Status.RUNNING, {}, None, {"task_id": "tok"})
    waiting = Instance("t_a", 0, Status.UNSTARTED, awaiting=["x"])
    for uid, instance in (("idle", done), ("busy", busy), ("waiting", waiting)):
        backend.atomic(uid, write_with_go(instance))
    assert backend.purge(older_than=3600) == [], "nothing is an hour old"
    later = time.time() + 60
    assert backend.purge(older_than=30, now=later, dry_run=True) == ["idle", "waiting"]
    assert backend.purge(older_than=30, now=later, resolved_only=True, dry_run=True) == ["idle"]
    assert {"idle", "busy", "waiting"} <= set(backend.sessions()), "a dry run deletes nothing"
    read = backend.instances_many(["idle", "busy", "nobody"])["busy"]
    assert isinstance(read, dict) and read["t_a#0"].status is Status.RUNNING
    assert backend.purge(older_than=30, now=later) == ["idle", "waiting"]
    assert set(backend.sessions()) >= {"busy"} and not {"idle", "waiting"} & set(backend.sessions())
    assert backend.instances("idle") == {} and backend.instances("busy")["t_a#0"].status is Status.RUNNING
    with pytest.raises(ValueError, match="older_than must be a number of seconds >= 0, got -1"):
        backend.purge(older_than=-1)


def test_a_read_only_transaction_reads_and_refuses_writes(backend: StorageBackend) -> None:
    instance = Instance("t_a", 0, Status.UNSTARTED, awaiting=["x"])
    backend.atomic("ro", lambda txn: txn.write(changes(instance, triggers=("go",))))
    snapshot = backend.read("ro", lambda txn: txn.load(Needs(frozenset({"go"}), instances=frozenset({"t_a#0"}))))
    assert snapshot.instances == {"t_a#0": instance} and snapshot.triggers["go"].count == 1
    with pytest.raises(RuntimeError, match="session 'ro': a read-only transaction cannot write"):
        backend.read("ro", lambda txn: txn.write(changes(Instance("t_a", 1, Status.UNSTARTED, awaiting=["x"]))))
    assert set(backend.instances("ro")) == {"t_a#0"}


def test_reading_at_scale_pages_and_sums_up_what_the_whole_reads_say(backend: StorageBackend) -> None:
    """The operator commands' reads (sessions a page at a time, a session's
    instances a batch at a time, summaries) say what the whole reads say,
    in ``manager.instances``' order, with a worker's start counted."""
    from celery_triggers.storage.base import SessionSummary

    def write(uid: str, task: str, statuses: list[Status]) -> None:
        instances = {
            f"{task}#{n}": Instance(
                task,
                n,
                s,
                {"go": {"n": n, "long": "x" * 600 * (n == 17)}},
                None,
                {"created_at": 100.0 + n, "task_id": f"T{n}"},
            )
            for n, s in enumerate(statuses)
        }
        backend.atomic(
            uid, lambda txn: txn.write(Changes(tasks={task: TaskRecord(task, len(statuses))}, instances=instances))
        )

    # Given two tasks in one session, one of them past 10 instances (t_b#9 comes before t_b#10)
    # and past 16 (a Redis group of records), one record long enough to be kept alone there
    write("big", "t_b", [Status.FINISHED] * 17 + [Status.FAILED] * 2 + [Status.UNSTARTED])
    write("big", "t_a", [Status.SCHEDULED, Status.FINISHED])
    write("other", "t_a", [Status.FINISHED])
    # Then sessions come a page at a time, and each one says whether it exists
    assert sorted(uid for page in backend.iter_sessions(1) for uid in page) == backend.sessions()
    assert backend.session_exists("big") and not backend.session_exists("nobody")
    # And the instances come in batches, in the order of manager.instances
    batches = list(backend.iter_instances("big", batch=4))
    assert all(1 <= len(batch) <= 4 for batch in batches) and len(batches) >= 5
    order = ["t_a#0", "t_a#1", *(f"t_b#{n}" for n in range(20))]
    whole = backend.instances("big")
    assert [i for batch in batches for i in batch] == [whole[name] for name in order]
    assert list(backend.iter_instances("nobody")) == []
    # And the summaries say what counting every instance says
    expected = SessionSummary({"failed": 2, "finished": 18, "scheduled": 1, "unstarted": 1}, 119.0)
    found = backend.summaries(["big", "other", "nobody"])
    assert found == {"big": expected, "other": SessionSummary({"finished": 1}, 100.0), "nobody": SessionSummary()}
    quick = backend.summaries(["big"], activity=False)["big"]
    assert isinstance(quick, SessionSummary) and quick.counts == expected.counts
    assert backend.count_instances("big") == 22 and backend.count_instances("nobody") == 0
    assert StorageBackend.summaries(backend, ["big"]) == {"big": expected}, "the generic tally agrees"
    # When a worker starts the scheduled instance, then finishes it
    backend.start("big", "t_a#0", "T0", 500.0, track=True, metadata={"hostname": "w1"})
    running = SessionSummary({"failed": 2, "finished": 18, "running": 1, "unstarted": 1}, 500.0)
    assert backend.summaries(["big"]) == {"big": running}
    done = Instance(
        "t_a", 0, Status.FINISHED, {}, 1, {**backend.instance("big", "t_a#0").metadata, "finished_at": 501.0}
    )
    backend.atomic("big", rewrite(done))
    finished = SessionSummary({"failed": 2, "finished": 19, "unstarted": 1}, 501.0)
    assert backend.summaries(["big"]) == {"big": finished} == StorageBackend.summaries(backend, ["big"])
