"""The worker's hop alone: ``python -m benchmarks.hops [--runs N] [--untracked]``.

The cases of ``python -m benchmarks`` that run trigger tasks on the worker
(a cascade of 50 vs ``chain``, many three-task sessions vs as many chains,
the producer's ``fire()`` included, fan-in vs ``chord``, one task end to
end) and the storage round trips per task, without the throughput and
footprint sections: short enough to run a checkout against another several
times, interleaved (each run prints one JSON line with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .__main__ import Bench, _ratio_row


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (Linux ``/proc``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def cpu_per_task(bench: Bench, cases: dict[str, Callable[[str], Any]], tasks: int, rounds: int) -> dict[str, Any]:
    """CPU time per task (ms) of the worker (main process and pool), the
    broker's redis-server and the storage's, each case run ``rounds`` times
    interleaved: steadier than wall time on a loaded machine."""
    assert bench.worker is not None and bench.broker.proc is not None and bench.store.proc is not None
    children = subprocess.run(["pgrep", "-P", str(bench.worker.pid)], capture_output=True, text=True).stdout.split()
    parts = {
        "worker": [bench.worker.pid, *map(int, children)],
        "broker": [bench.broker.proc.pid],
        "storage": [bench.store.proc.pid],
    }
    spent: dict[str, dict[str, float]] = {case: dict.fromkeys(parts, 0.0) for case in cases}
    for _ in range(rounds):
        for case, start in cases.items():
            before = {part: _cpu_seconds(pids) for part, pids in parts.items()}
            bench.timed(start)
            for part, pids in parts.items():
                spent[case][part] += _cpu_seconds(pids) - before[part]
    return {
        case: {part: round(seconds / (rounds * tasks) * 1000, 3) for part, seconds in by_part.items()}
        for case, by_part in spent.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="interleaved runs per case (default 9)")
    parser.add_argument("--untracked", action="store_true", help="triggers_track_started=False on the worker")
    parser.add_argument("--json", action="store_true", help="one JSON line of medians (ms) and ratios")
    args = parser.parse_args(argv)
    os.environ["BENCH_TRACK_STARTED"] = "0" if args.untracked else "1"
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), False, args.runs)
        try:
            bench.start_worker()
            cases = {
                "cascade": bench.cascade(),
                "many": bench.many(max(bench.sessions)),
                "fan_in": bench.fan_in(),
                "single": bench.single(),
            }
            trips = bench.round_trips()
            cpu = _cascade_cpu(bench)
        finally:
            bench.stop()
    if args.json:
        out: dict[str, object] = {"load": os.getloadavg()[0]}
        for name, (plain, ours) in cases.items():
            a, b = statistics.median(plain) * 1000, statistics.median(ours) * 1000
            out[name] = {"plain": round(a, 2), "triggers": round(b, 2), "ratio": round(b / a, 3)}
        out["trips"] = trips
        out["cpu"] = cpu
        print(json.dumps(out))
        return
    print("| case | plain Celery (ms) | celery-triggers (ms, min-max) | ratio | target |")
    print("|---|---|---|---|---|")
    print(_ratio_row(f"cascade of {bench.chain_length} tasks vs chain", *cases["cascade"], "<= 1.15"))
    print(_ratio_row(f"{max(bench.sessions)} sessions of a 3-task cascade vs chains", *cases["many"], "<= 1.15"))
    print(_ratio_row(f"fan-in {bench.fan} + 1 vs chord", *cases["fan_in"], "<= 1.0"))
    print(_ratio_row("one task end to end", *cases["single"], "-"))
    print(f"\n| CPU per task, cascade of {bench.chain_length} (ms) | worker | broker | storage | total |")
    print("|---|---|---|---|---|")
    for case, by_part in cpu.items():
        print(f"| {case} | " + " | ".join(f"{v:.3f}" for v in by_part.values()) + f" | {sum(by_part.values()):.3f} |")
    print("\n| storage work per trigger task (Redis, counted with MONITOR) | value |")
    print("|---|---|")
    for name, value in trips.items():
        print(f"| {name} | {value:.1f} |")


def _cascade_cpu(bench: Bench) -> dict[str, Any]:
    from celery import chain

    noop, done = bench.mod.noop, bench.mod.done

    def plain(key: str) -> None:
        chain(*[noop.si() for _ in range(bench.chain_length - 1)], done.si(key=key)).apply_async()

    def triggers(key: str) -> None:
        bench.app.triggers.fire(key, "go")

    return cpu_per_task(bench, {"chain": plain, "cascade": triggers}, bench.chain_length, 20)


if __name__ == "__main__":
    main()
