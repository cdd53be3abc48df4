"""A Celery app for the observability tests (tests/test_observe.py), run
by a real ``celery worker``: events on (as ``-E``), the observers
installed, ``/metrics`` on ``CT_METRICS_PORT`` when set, and in each
process of the worker an OpenTelemetry SDK tracer provider that writes
every finished span as a JSON line to ``$CT_TEST_DATA/spans.jsonl``
(``CT_OTEL_CELERY=1``: opentelemetry-instrumentation-celery too).

Tasks: ``t_a`` after ``go``, ``t_b`` after ``t_a`` (a cascade), and
``t_meet`` after ``meet``, whose body waits until two pool processes run
one each (so that metrics are counted in both).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from celery_triggers import Triggers, observe, trigger_task

DATA = Path(os.environ.get("CT_TEST_DATA", "/nonexistent-set-CT_TEST_DATA"))

app = Celery("ct_observe")
app.conf.update(
    broker_url=os.environ.get("CT_BROKER", "redis://127.0.0.1:1/0"),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
    triggers_storage=f"sqlite:///{DATA / 'triggers.sqlite3'}",
    triggers_metrics_port=os.environ.get("CT_METRICS_PORT") or None,
    triggers_metrics_addr="127.0.0.1",
    triggers_recover_interval=os.environ.get("CT_RECOVER_INTERVAL", "0"),
)
Triggers(app)
observe.install(app)


@trigger_task(after=["go"], name="t_a")
@app.task(name="tests.observe.a")
def a(trigger_kwargs: dict[str, Any]) -> dict[str, int]:
    return {"n": int(trigger_kwargs["go"].get("n", 0)) + 1}


@trigger_task(after=["t_a"], name="t_b")
@app.task(name="tests.observe.b")
def b(trigger_kwargs: dict[str, Any]) -> int:
    return int(trigger_kwargs["t_a"]["n"]) * 2


@trigger_task(after=["meet"], name="t_meet")
@app.task(name="tests.observe.meet")
def meet() -> int:
    (DATA / f"meet-{os.getpid()}").touch()
    deadline = time.monotonic() + 20
    while len(list(DATA.glob("meet-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


class _JsonLines:
    """A span exporter writing one JSON line per span (appends are atomic
    for lines this short, whichever process writes)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = []
        for span in spans:
            parent = span.parent
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": format(span.context.trace_id, "032x"),
                        "span_id": format(span.context.span_id, "016x"),
                        "parent_id": format(parent.span_id, "016x") if parent is not None else None,
                        "kind": span.kind.name,
                        "attributes": dict(span.attributes or {}),
                        "start": span.start_time,
                        "end": span.end_time,
                        "pid": os.getpid(),
                    }
                )
                + "\n"
            )
        with self.lock, open(self.path, "a") as out:
            out.write("".join(lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_traced: list[bool] = []


def _tracing(**_: Any) -> None:
    """In the worker's main process, before the fork (the pool processes
    inherit it), never in a producer that imports this module."""
    if _traced:
        return
    _traced.append(True)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_JsonLines(DATA / "spans.jsonl")))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)
    if os.environ.get("CT_OTEL_CELERY") == "1":
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]  # untyped there


worker_init.connect(_tracing, weak=False)
worker_process_init.connect(_tracing, weak=False)  # a pool that does not fork (or forked first)
