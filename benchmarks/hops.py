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
import tempfile
from pathlib import Path

from .__main__ import Bench, _ratio_row


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
                "many": bench.many(),
                "fan_in": bench.fan_in(),
                "single": bench.single(),
            }
            trips = bench.round_trips()
        finally:
            bench.stop()
    if args.json:
        out: dict[str, object] = {"load": os.getloadavg()[0]}
        for name, (plain, ours) in cases.items():
            a, b = statistics.median(plain) * 1000, statistics.median(ours) * 1000
            out[name] = {"plain": round(a, 2), "triggers": round(b, 2), "ratio": round(b / a, 3)}
        out["trips"] = trips
        print(json.dumps(out))
        return
    print("| case | plain Celery (ms) | celery-triggers (ms, min-max) | ratio | target |")
    print("|---|---|---|---|---|")
    print(_ratio_row(f"cascade of {bench.chain_length} tasks vs chain", *cases["cascade"], "<= 1.15"))
    print(_ratio_row(f"{bench.sessions} sessions of a 3-task cascade vs chains", *cases["many"], "<= 1.15"))
    print(_ratio_row(f"fan-in {bench.fan} + 1 vs chord", *cases["fan_in"], "<= 1.0"))
    print(_ratio_row("one task end to end", *cases["single"], "-"))
    print("\n| storage work per trigger task (Redis, counted with MONITOR) | value |")
    print("|---|---|")
    for name, value in trips.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
