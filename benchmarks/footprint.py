"""Bytes per instance in storage: ``python -m benchmarks.footprint``.

One session per case, holding 100 or 1,000 instances of one task:

* *scheduled*: ``andEvery: item`` fired that often (each fire schedules an
  instance; the null runner sends nothing);
* *finished by a worker*: those instances then started and finished as a
  worker does (its hostname, a retry count, a result ``{"i": n}``);
* *finished by status*: ``update_instance_status(..., "finished")`` instead
  (the original framework's figure is measured so);
* *waiting*: ``after: [never], andEvery: item``: each fire makes one more
  instance that waits.

Per instance: the growth of the session's keys (Redis ``MEMORY USAGE``, every
element counted) from its first instance to the last, divided by the
instances added; on SQLite, the growth of the file (after ``VACUUM``).

The first table is what this release stores (format 2) beside what the
previous release stored (format 1: the same instances written in its
layout by :mod:`._layouts`, which keeps that release's encoder). The second
takes each storage lever alone, then format 2 without it, plus two levers
not taken and a server with larger compact encodings. Starts its own
redis-server(s) on loopback.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from celery_triggers.core.state import Instance

from ._layouts import FORMAT1, FORMAT2, Levers, format1_record, write_layout
from ._setup import machine, make_app

SIZES = (100, 1000)
KINDS = ("scheduled", "finished by a worker", "finished by status", "waiting")
CONFIGS = {
    "t_many": {"after": [], "andEvery": "item", "run": "bench.sink"},
    "t_wait": {"after": ["never"], "andEvery": "item", "run": "bench.sink"},
}
#: The original framework (its cache storage on django-redis), 1,000 instances.
ORIGINAL = {"scheduled": 164, "finished by status": 196, "waiting": 82}
#: Compact encodings past their defaults (never required: shown for what they do).
LARGE_LISTPACKS = (
    "--hash-max-listpack-entries",
    "4096",
    "--hash-max-listpack-value",
    "8192",
    "--zset-max-listpack-entries",
    "4096",
    "--zset-max-listpack-value",
    "256",
)


def run_case(url: str, kind: str, n: int, uid: str, measure: Any) -> tuple[float, Any, list[Instance]]:
    """Store the case (``measure()``: the session's size now); its bytes
    per instance, its storage and its instances."""
    task = "t_wait" if kind == "waiting" else "t_many"
    app = make_app(url, runner="null")
    app.triggers.configure({task: CONFIGS[task]})
    session = app.triggers.session(uid)
    session.fire("item", {"i": 0})
    one = measure(app.triggers.storage)
    for i in range(1, n):
        session.fire("item", {"i": i})
    for i in range(n):
        name = f"{task}#{i}"
        if kind == "finished by a worker":
            token = session.instance(name).metadata["task_id"]
            session.start_instance(name, token, hostname="celery@bench-worker-1", celery_retries=0)
            session.finish_instance(name, token, {"i": i})
        elif kind == "finished by status":
            session.update_instance_status(name, "finished")
    storage = app.triggers.storage
    return (measure(storage) - one) / (n - 1), storage, sorted(storage.instances(uid).values(), key=_number)


def _number(instance: Instance) -> int:
    return instance.number


def redis_size(client: Any, keys: list[str]) -> int:
    return sum(client.memory_usage(k, samples=0) or 0 for k in keys)


def modelled(client: Any, state: Any, instances: list[Instance], levers: Levers) -> float:
    """Bytes per instance of ``instances`` written in ``levers``' layout."""
    keys = [f"model:{{m}}:{kind}" for kind in ("state", "inst", "version", "wait", "waiting")]
    write_layout(client, keys, state, instances[:1], levers)
    one = redis_size(client, keys)
    write_layout(client, keys, state, instances, levers)
    return (redis_size(client, keys) - one) / (len(instances) - 1)


def sqlite_growth(path: Path, uid: str, first: str, encode: Any) -> float:
    """Bytes per instance of the session's rows in a copy of ``path``, the
    records re-encoded by ``encode`` (None: as stored), after ``VACUUM``."""
    sizes = []
    for keep_all in (False, True):
        copy = path.with_suffix(f".{keep_all}.copy")
        shutil.copy(path, copy)
        with sqlite3.connect(copy) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
            if not keep_all:
                for table in ("ct_instances", "ct_waiting"):
                    conn.execute(f"DELETE FROM {table} WHERE session = ? AND name != ?", (uid, first))
            if encode is not None:
                rows = conn.execute("SELECT name, data FROM ct_instances WHERE session = ?", (uid,)).fetchall()
                conn.executemany(
                    "UPDATE ct_instances SET data = ? WHERE session = ? AND name = ?",
                    [(encode(name, data), uid, name) for name, data in rows],
                )
        with sqlite3.connect(copy, isolation_level=None) as conn:
            conn.execute("VACUUM")
        sizes.append(copy.stat().st_size)
        copy.unlink()
    query = "SELECT COUNT(*) FROM ct_instances WHERE session = ?"
    count: int = sqlite3.connect(path).execute(query, (uid,)).fetchone()[0]
    return (sizes[1] - sizes[0]) / (count - 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 and 50 instances (a smoke test)")
    args = parser.parse_args(argv)
    sizes = (20, 50) if args.quick else SIZES
    import redis

    from celery_triggers.storage.records import decode_instance
    from tests.servers import RedisServer

    out: dict[str, Any] = {"redis": {}, "model": {}, "sqlite": {}}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [RedisServer(Path(tmp) / "a"), RedisServer(Path(tmp) / "b", *LARGE_LISTPACKS)]
        for server in servers:
            server.directory.mkdir()
            server.start()
        try:
            client, large = (redis.Redis(port=s.port) for s in servers)
            cases: dict[tuple[str, int], tuple[Any, list[Instance]]] = {}
            for n in sizes:
                for kind in KINDS:
                    uid = f"fp-{kind}-{n}"
                    per, storage, instances = run_case(
                        f"{servers[0].url}?prefix=fp",
                        kind,
                        n,
                        uid,
                        lambda st, uid=uid: redis_size(client, st.keys(uid)),
                    )
                    out["redis"][kind, n] = per
                    cases[kind, n] = (client.get(storage.keys(uid)[0]), instances)
                    path = Path(tmp) / f"fp-{n}-{KINDS.index(kind)}.sqlite3"
                    sq, _, _ = run_case(f"sqlite:///{path}", kind, n, uid, lambda _, path=path: _file_size(path))
                    first = instances[0].name

                    def again(name: str, data: str, uid: str = uid) -> str:
                        return format1_record(decode_instance(uid, name, data))

                    out["sqlite"][kind, n] = (
                        sq,
                        sqlite_growth(path, uid, first, None),
                        sqlite_growth(path, uid, first, again),
                    )
            variants = [("format 1 (before)", FORMAT1, client)]
            for lever in ("lists", "ids", "statuses", "created", "groups"):
                variants.append((f"format 1 + {lever}", replace(FORMAT1, **{lever: True}), client))
            variants.append(("format 2 (this release)", FORMAT2, client))
            for lever in ("lists", "ids", "statuses", "created", "groups"):
                variants.append((f"format 2 without {lever}", replace(FORMAT2, **{lever: False}), client))
            variants.append(("format 2 + hostname table (not taken)", replace(FORMAT2, hosts=True), client))
            variants.append(("format 2 without awaiting lists (not taken)", replace(FORMAT2, awaiting=False), client))
            variants.append(("format 1, larger listpacks (server setting)", FORMAT1, large))
            variants.append(("format 2, larger listpacks (server setting)", FORMAT2, large))
            for label, levers, on in variants:
                out["model"][label] = {
                    (kind, n): modelled(on, *cases[kind, n], levers) for n in sizes for kind in KINDS
                }
            client.close()
            large.close()
        finally:
            for server in servers:
                server.stop()
    report(out, sizes)
    return out


def _file_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def report(out: dict[str, Any], sizes: tuple[int, ...]) -> None:
    print(f"bytes per instance, one session per case; {machine()}; Redis MEMORY USAGE (every element counted)\n")
    print("| Redis | instances | " + " | ".join(KINDS) + " |")
    print("|---|---|" + "---|" * len(KINDS))
    before = out["model"]["format 1 (before)"]
    for n in sizes:
        cells = [f"{before[k, n]:.0f}" if (k, n) in before else "-" for k in KINDS]
        print(f"| format 1 (before) | {n} | " + " | ".join(cells) + " |")
        print(f"| format 2 (this release) | {n} | " + " | ".join(f"{out['redis'][k, n]:.0f}" for k in KINDS) + " |")
    cells = [str(ORIGINAL.get(k, "-")) for k in KINDS]
    print("| original framework (quoted) | 1000 | " + " | ".join(cells) + " |")
    kinds = ("scheduled", "finished by a worker", "waiting")
    print("\n| Redis, each lever | " + " | ".join(f"{k} ({n})" for n in sizes for k in kinds) + " |")
    print("|---|" + "---|" * (len(kinds) * len(sizes)))
    for label, figures in out["model"].items():
        print(f"| {label} | " + " | ".join(f"{figures[k, n]:.0f}" for n in sizes for k in kinds) + " |")
    print("\n| SQLite file growth | instances | " + " | ".join(KINDS) + " |")
    print("|---|---|" + "---|" * len(KINDS))
    for n in sizes:
        for label, column in (("live file", 0), ("after VACUUM, format 2", 1), ("after VACUUM, format 1", 2)):
            cells = [f"{out['sqlite'][k, n][column]:.0f}" for k in KINDS]
            print(f"| {label} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
