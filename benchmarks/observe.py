"""What observing costs: ``python -m benchmarks.observe``.

Two redis-servers on loopback (broker, storage). Two measures, each in a
fresh process per configuration and run (one process cannot take an
OpenTelemetry SDK back), the configurations interleaved run by run:

* fire: ``fire()`` of a trigger that schedules one task (its message sent
  to the Redis broker, nobody consuming), Redis storage;
* cascade hop: a cascade of 10 tasks run in-process (the eager runner:
  each hop is a worker's start, body and finish with its cascade's fire,
  without the broker's delivery), Redis storage; per hop.

Configurations: off (observe not installed); installed with nothing on (no
SDK, events off, no prometheus_client: the cost of hooks that return at
once); Celery's own ``task-sent`` events alone (``task_send_sent_event``,
observe not installed: what Celery charges for "events on"); trigger events
on (``task_send_sent_event``: Celery's and ours); the OpenTelemetry SDK on
(a ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter that
drops the spans); Prometheus metrics on (the hop in multiprocess mode, as
in a worker's pool process).

Medians of ``--runs`` runs; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from ._setup import machine

ROOT = Path(__file__).resolve().parent.parent

#: Configuration -> (observe parts installed, task_send_sent_event, OTel SDK).
CONFIGS: dict[str, tuple[tuple[str, ...] | None, bool, bool]] = {
    "off": (None, False, False),
    "installed, nothing on": (("events", "traces"), False, False),
    "Celery's task-sent events alone": (None, True, False),
    "events on": (("events",), True, False),
    "OpenTelemetry SDK on": (("traces",), False, True),
    "metrics on": (("metrics",), False, False),
}
#: Each "on" configuration against its baseline.
VERSUS = {
    "installed, nothing on": "off",
    "Celery's task-sent events alone": "off",
    "events on": "off",
    "OpenTelemetry SDK on": "off",
    "metrics on": "off",
}
HOPS = 10


def measure(config: str, fires: int, sessions: int) -> dict[str, float]:
    """In this (fresh) process: ms per fire and per cascade hop."""
    parts, sent_events, sdk = CONFIGS[config]
    if config == "metrics on":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ct-bench-prom-")
    if sdk:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
    from celery import Celery

    from celery_triggers import Triggers, observe

    app = Celery("bench_observe")
    app.conf.update(
        broker_url=os.environ["BENCH_BROKER"],
        triggers_storage=os.environ["BENCH_STORAGE"],
        task_ignore_result=True,
        task_send_sent_event=sent_events,
        triggers_runner="celery",
    )
    Triggers(app)
    if parts is not None:
        observe.install(app, events="events" in parts, traces="traces" in parts, metrics="metrics" in parts)

    @app.task(name="bench.one")
    def one() -> None:
        pass

    def hop() -> None:
        pass

    for n in range(HOPS):
        app.task(name=f"bench.hop{n}")(hop)
    configs: dict[str, Any] = {"t_one": {"after": ["go"], "run": "bench.one"}}
    for n in range(HOPS):
        configs[f"t_hop{n}"] = {"after": ["start" if n == 0 else f"t_hop{n - 1}"], "run": f"bench.hop{n}"}
    app.triggers.configure(configs)
    app.finalize()
    tag = uuid.uuid4().hex[:8]
    for n in range(20):  # warm-up: connections, declarations, first metrics
        app.triggers.fire(f"w-{tag}-{n}", "go")
    start = time.perf_counter()
    for n in range(fires):
        app.triggers.fire(f"f-{tag}-{n}", "go")
    fire_ms = (time.perf_counter() - start) / fires * 1000
    app.conf.triggers_runner = "eager"
    for n in range(3):  # warm-up of the hops: each task's first metrics, first spans
        app.triggers.fire(f"hw-{tag}-{n}", "start")
    start = time.perf_counter()
    for n in range(sessions):
        app.triggers.fire(f"h-{tag}-{n}", "start")
    hop_ms = (time.perf_counter() - start) / (sessions * HOPS) * 1000
    last = app.triggers.session(f"h-{tag}-{sessions - 1}").instance(f"t_hop{HOPS - 1}#0")
    assert last.status.value == "finished", last
    return {"fire": fire_ms, "hop": hop_ms}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one configuration, in a subprocess
    args = parser.parse_args(argv)
    fires, sessions = (20, 2) if args.quick else (300, 30)
    if args.measure:
        print(json.dumps(measure(args.measure, fires, sessions)))
        return
    from tests.servers import RedisServer

    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="ct-bench-observe-") as tmp:
        broker, store = RedisServer(Path(tmp) / "broker"), RedisServer(Path(tmp) / "storage")
        for server in (broker, store):
            server.directory.mkdir(parents=True)
            server.start()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_BROKER": broker.url, "BENCH_STORAGE": store.url}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        samples: dict[str, dict[str, list[float]]] = {c: {"fire": [], "hop": []} for c in CONFIGS}
        try:
            for _ in range(runs):
                for config in CONFIGS:
                    out = subprocess.run(
                        [sys.executable, "-m", "benchmarks.observe", "--measure", config, *(["--quick"] * args.quick)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True,
                    )  # fmt: skip
                    for key, value in json.loads(out.stdout.splitlines()[-1]).items():
                        samples[config][key].append(value)
        finally:
            for server in (broker, store):
                server.stop()
    medians = {c: {k: statistics.median(v) for k, v in s.items()} for c, s in samples.items()}
    print(f"# What observing costs ({machine()}; {runs} runs, interleaved, medians)\n")
    print("| configuration | ms per fire | vs off | ms per cascade hop | vs off |")
    print("|---|---|---|---|---|")
    for config, values in medians.items():
        base = medians[VERSUS.get(config, config)]
        print(
            f"| {config} | {values['fire']:.3f} | {values['fire'] / base['fire'] - 1:+.1%} "
            f"| {values['hop']:.3f} | {values['hop'] / base['hop'] - 1:+.1%} |"
        )


if __name__ == "__main__":
    main()
