"""celery_triggers.observe on real parts: a real ``celery worker``
(tests/observe_app.py) on the tests' redis-server, a real events receiver
on that broker, spans exported by the worker's processes to a file and by
this process to memory (the OpenTelemetry SDK), and real scrapes of the
worker's ``/metrics``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.signals import before_task_publish
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Worker, wait_for
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.worker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def observe_env(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[dict[str, str]]:
    """tests.observe_app imported here, on its own data folder and broker database."""
    data = tmp_path_factory.mktemp("observe")
    env = {
        "CT_TEST_DATA": str(data),
        "CT_BROKER": redis_server.url.rsplit("/", 1)[0] + "/2",
        "CT_METRICS_PORT": str(free_port()),
        "CT_RECOVER_INTERVAL": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import tests.observe_app
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert Path(tests.observe_app.DATA) == data, "tests.observe_app was imported before this module's fixture"
    yield env


@pytest.fixture(scope="module")
def observe_worker(observe_env: dict[str, str]) -> Iterator[Worker]:
    w = Worker(Path(observe_env["CT_TEST_DATA"]), app="tests.observe_app", **observe_env)
    w.start()
    yield w
    w.discard()


@pytest.fixture
def oapp(observe_worker: Worker) -> Celery:
    import tests.observe_app

    assert observe_worker.alive, observe_worker.log.read_text(errors="replace")[-3000:]
    return tests.observe_app.app


@pytest.fixture(scope="module")
def spans_here() -> InMemorySpanExporter:
    """This process's spans (the producer's): an SDK provider, set once."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _uid() -> str:
    return "obs-" + uuid.uuid4().hex[:12]


# -- events -------------------------------------------------------------------


class _Events:
    """A real ``app.events.Receiver`` on the broker, in a thread."""

    def __init__(self, app: Celery):
        self.app = app
        self.seen: list[dict[str, Any]] = []
        self.connection = app.connection_for_read()
        self.receiver = app.events.Receiver(self.connection, handlers={"*": self.seen.append})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> _Events:
        self.thread.start()
        probe = uuid.uuid4().hex

        def arrived() -> bool:  # until the receiver listens: probes sent again and again
            with self.app.events.default_dispatcher() as dispatcher:
                dispatcher.send("probe-ready", probe=probe)
            return any(e.get("probe") == probe for e in self.seen)

        wait_for(arrived, 20, "the receiver to listen")
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.should_stop = True
        self.thread.join(timeout=5)
        self.connection.release()

    def of(self, uid: str, type_: str | None = None) -> list[dict[str, Any]]:
        return [e for e in list(self.seen) if e.get("uid") == uid and (type_ is None or e["type"] == type_)]


def test_a_receiver_sees_every_fire_and_status_change_of_a_cascade(oapp: Celery, observe_worker: Worker) -> None:
    """Given events on in the producer (task_send_sent_event) and in the
    worker (worker_send_task_events), when a fire cascades t_a -> t_b,
    then a receiver gets trigger-fired for go, t_a and t_b, and
    trigger-instance for each status change, with the task and task id."""
    oapp.conf.task_send_sent_event = True
    uid = _uid()
    try:
        with _Events(oapp) as events:
            fired = oapp.triggers.fire(uid, "go", {"n": 1})
            fired.wait(30, until="t_b")
            wait_for(lambda: len(events.of(uid, "trigger-fired")) == 3, 20, "three trigger-fired events")
            wait_for(lambda: len(events.of(uid, "trigger-instance")) == 8, 20, "eight trigger-instance events")
    finally:
        oapp.conf.task_send_sent_event = False
    by_trigger = {e["trigger"]: e for e in events.of(uid, "trigger-fired")}
    assert {t: e["scheduled"] for t, e in by_trigger.items()} == {"go": ["t_a#0"], "t_a": ["t_b#0"], "t_b": []}
    changes = [(e["instance"], e["task"], e["status"]) for e in events.of(uid, "trigger-instance")]
    for name, task in (("t_a#0", "t_a"), ("t_b#0", "t_b")):
        assert [s for n, t, s in changes if n == name and t == task] == [
            "unstarted",
            "scheduled",
            "running",
            "finished",
        ]
    instances = oapp.triggers.session(uid).instances
    for event in events.of(uid, "trigger-instance"):
        if event["status"] != "unstarted":
            assert event["task_id"] == instances[event["instance"]].metadata["task_id"]
    # Producer and worker are told apart as Celery tells them: by hostname and pid.
    assert by_trigger["go"]["pid"] == os.getpid()
    assert by_trigger["t_a"]["pid"] != os.getpid()
    assert by_trigger["t_a"]["hostname"] == observe_worker.node


def test_no_events_when_events_are_off(oapp: Celery) -> None:
    """Given task_send_sent_event off in the producer (and the eager
    runner: no worker involved), a fire sends no event; the same fire with
    events on does, so the receiver was listening."""
    off, on = _uid(), _uid()
    oapp.conf.triggers_runner = "eager"
    try:
        with _Events(oapp) as events:
            oapp.triggers.fire(off, "go", {"n": 1})
            oapp.conf.task_send_sent_event = True
            oapp.triggers.fire(on, "go", {"n": 1})
            wait_for(lambda: len(events.of(on, "trigger-fired")) == 3, 20, "the events of the fire with events on")
    finally:
        oapp.conf.task_send_sent_event = False
        oapp.conf.triggers_runner = "celery"
    assert events.of(off) == []
    assert {e["trigger"] for e in events.of(on, "trigger-fired")} == {"go", "t_a", "t_b"}


# -- traces -------------------------------------------------------------------


def _worker_spans(data: Path, trace_id: str) -> list[dict[str, Any]]:
    path = data / "spans.jsonl"
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [s for s in spans if s["trace_id"] == trace_id]


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_a_cascade_is_one_trace_across_processes(
    oapp: Celery, observe_worker: Worker, spans_here: InMemorySpanExporter
) -> None:
    """Given an SDK tracer provider here and in the worker, when a fire
    cascades t_a -> t_b, then fire go (here) -> run t_a#0 -> fire t_a ->
    run t_b#0 (in the worker) are one trace, each the parent of the next."""
    uid = _uid()
    spans_here.clear()
    oapp.triggers.fire(uid, "go", {"n": 2}).wait(30, until="t_b")
    (fire,) = [s for s in spans_here.get_finished_spans() if _attrs(s).get("triggers.session") == uid]
    assert fire.name == "triggers.fire go"
    assert _attrs(fire) == {
        "triggers.session": uid,
        "triggers.trigger": "go",
        "triggers.scheduled": ("t_a#0",),
    }
    trace_id = _hex(fire.context.trace_id, 32)
    data = observe_worker.data
    spans = wait_for(lambda: (s := _worker_spans(data, trace_id)) and len(s) >= 4 and s, 20, "the worker's spans")
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"triggers.run t_a#0", "triggers.fire t_a", "triggers.run t_b#0", "triggers.fire t_b"}
    run_a, fire_a, run_b = by_name["triggers.run t_a#0"], by_name["triggers.fire t_a"], by_name["triggers.run t_b#0"]
    assert run_a["parent_id"] == _hex(fire.context.span_id, 16)
    assert fire_a["parent_id"] == run_a["span_id"]
    assert run_b["parent_id"] == fire_a["span_id"]
    assert by_name["triggers.fire t_b"]["parent_id"] == run_b["span_id"]
    assert run_a["kind"] == "CONSUMER"
    assert run_a["attributes"]["triggers.status"] == "finished"
    assert run_a["attributes"]["triggers.instance"] == "t_a#0"
    assert run_a["attributes"]["triggers.session"] == uid
    assert fire_a["attributes"]["triggers.trigger"] == "t_a"
    assert (
        run_a["attributes"]["messaging.message.id"] == oapp.triggers.session(uid).instance("t_a#0").metadata["task_id"]
    )


def test_without_an_sdk_nothing_is_recorded_and_no_header_is_added(tmp_path: Path) -> None:
    """In a fresh process with opentelemetry-api but no SDK provider: the
    tracing hooks return no context, and messages carry no trace header."""
    code = """
import json
from celery import Celery
from celery.signals import before_task_publish
from celery_triggers import Triggers, trigger_task, observe
from celery_triggers.observe import tracing
app = Celery("nosdk", broker="memory://")
app.conf.update(triggers_storage="memory://", task_always_eager=False)
Triggers(app)
assert "traces" in observe.install(app), observe.installed_parts(app)
@trigger_task(after=["go"], name="t_a")
@app.task(name="a")
def a():
    return 1
app.finalize()
seen = []
before_task_publish.connect(lambda headers=None, **_: seen.append(dict(headers)), weak=False)
hooks = [h for h in app.triggers.hooks if isinstance(h, tracing.TracingHooks)][0]
manager = app.triggers.session("s")
assert hooks.firing(manager, ["go"], 0.0) is None
class Request:
    id = "x"
assert hooks.running("s", "t_a#0", type("T", (), {"request": Request()})()) is None
app.triggers.fire("s", "go")
assert seen and "triggers_session" in seen[0], seen
print(json.dumps(sorted(seen[0])))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    keys = json.loads(proc.stdout)
    assert not {"traceparent", "tracestate", "baggage"} & set(keys), keys


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_install_leaves_out_the_parts_whose_library_is_missing(tmp_path: Path) -> None:
    """Without opentelemetry and prometheus_client: events only; and a
    worker setting triggers_metrics_port is told which extra to install."""
    code = """
import sys
sys.modules["opentelemetry"] = None
sys.modules["prometheus_client"] = None
from celery import Celery
from celery_triggers import Triggers, ConfigurationError, observe
from celery_triggers.observe.serve import multiprocess_directory
app = Celery("bare", broker="memory://")
Triggers(app)
print(observe.install(app))
try:
    multiprocess_directory()
except ConfigurationError as exc:
    print(exc)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    parts, error = proc.stdout.splitlines()
    assert parts == "['events']"
    assert error == (
        "setting triggers_metrics_port: set, but prometheus_client is not installed: "
        "pip install 'celery-triggers[prometheus]'"
    )


# -- metrics ------------------------------------------------------------------


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_the_worker_serves_counts_of_every_pool_process(oapp: Celery, observe_env: dict[str, str]) -> None:
    """Given /metrics on the worker, when 3 fires cascade and 2 instances
    run in two pool processes at once, then, between two scrapes, the
    counters moved by exactly those numbers (both processes added up)."""
    port = int(observe_env["CT_METRICS_PORT"])
    data = Path(observe_env["CT_TEST_DATA"])
    for stale in data.glob("meet-*"):
        stale.unlink()
    before = _scrape(port)
    for _ in range(3):
        oapp.triggers.fire(_uid(), "go", {"n": 1}).wait(30, until="t_b")
    meets = [oapp.triggers.fire(_uid(), "meet") for _ in range(2)]
    pids = {m.wait(30)["t_meet#0"].result for m in meets}
    assert len(pids) == 2, "both pool processes ran one"
    after = _scrape(port)
    assert _delta(after, before, "celery_triggers_fires_total", trigger="t_a") == 3
    assert _delta(after, before, "celery_triggers_fires_total", trigger="t_b") == 3
    assert _delta(after, before, "celery_triggers_fires_total", trigger="t_meet") == 2
    assert _delta(after, before, "celery_triggers_fires_total", trigger="go") == 0  # fired here, counted here
    for task, runs in (("t_a", 3), ("t_b", 3), ("t_meet", 2)):
        assert _delta(after, before, "celery_triggers_instance_transitions_total", task=task, status="running") == runs
        assert _delta(after, before, "celery_triggers_instance_transitions_total", task=task, status="finished") == runs
    assert _delta(after, before, "celery_triggers_queue_wait_seconds_count") == 8
    assert _delta(after, before, "celery_triggers_queue_wait_seconds_sum") > 0


def test_the_sweep_sets_the_instances_gauge_from_storage(oapp: Celery, observe_env: dict[str, str]) -> None:
    """The worker sweeps every second: the gauge reaches what storage holds."""
    port = int(observe_env["CT_METRICS_PORT"])
    oapp.triggers.fire(_uid(), "go", {"n": 1}).wait(30, until="t_b")
    storage = oapp.triggers.storage
    expected = sum(1 for uid in storage.sessions() if uid.startswith("obs-") for _ in storage.instances(uid).values())

    def finished() -> float:
        return _scrape(port).get(("celery_triggers_instances", (("status", "finished"),)), -1.0)

    wait_for(lambda: finished() == expected, 20, f"the gauge to read {expected} finished instances")


def test_a_producer_serves_the_same_metrics_with_one_line(oapp: Celery) -> None:
    """``prometheus_client.start_http_server(port)`` in a producer: its fires."""
    import prometheus_client

    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1")
    try:
        before = _scrape(port)
        oapp.triggers.fire(_uid(), "go", {"n": 1})
        oapp.triggers.fire(_uid(), "go", {"n": 1})
        after = _scrape(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert _delta(after, before, "celery_triggers_fires_total", trigger="go") == 2
    assert _delta(after, before, "celery_triggers_instance_transitions_total", task="t_a", status="scheduled") == 2


# -- composition with opentelemetry-instrumentation-celery (last: it replaces the worker) --


@pytest.mark.current_app_ok  # the instrumentation finds a task by name in Celery's current app
def test_spans_compose_with_opentelemetry_instrumentation_celery(
    oapp: Celery, observe_worker: Worker, observe_env: dict[str, str], spans_here: InMemorySpanExporter
) -> None:
    """Given the Celery instrumentation on both sides, the chain stays one
    trace with intact parenting: fire go -> apply_async -> run/<task> ->
    triggers.run t_a#0 -> triggers.fire t_a -> apply_async -> run/<task> ->
    triggers.run t_b#0; and a message carries the propagator's key once,
    the one the instrumentation's publish span injected."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    observe_worker.stop()
    instrumented = Worker(observe_worker.data, app="tests.observe_app", **observe_env, CT_OTEL_CELERY="1")
    headers: list[dict[str, Any]] = []

    def capture(headers_: dict[str, Any] | None = None, **_: Any) -> None:
        if headers_ is not None:
            headers.append(dict(headers_))

    from celery import _state

    previous = _state.get_current_app()
    oapp.set_current()
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]  # untyped there
    instrumentor.instrument()
    before_task_publish.connect(lambda headers=None, **kw: capture(headers), weak=False, dispatch_uid="obs-capture")
    try:
        instrumented.start()
        uid = _uid()
        spans_here.clear()
        oapp.triggers.fire(uid, "go", {"n": 3}).wait(30, until="t_b")
        here = spans_here.get_finished_spans()
        (fire,) = [
            s for s in here if s.name == "triggers.fire go" and (s.attributes or {}).get("triggers.session") == uid
        ]
        (publish,) = [s for s in here if s.name.startswith("apply_async/") and s.parent is not None]
        trace_id = _hex(fire.context.trace_id, 32)
        spans = wait_for(lambda: (s := _worker_spans(observe_worker.data, trace_id)) and len(s) >= 7 and s, 20, "spans")
    finally:
        before_task_publish.disconnect(dispatch_uid="obs-capture")
        instrumentor.uninstrument()
        previous.set_current()
        instrumented.discard()
        observe_worker.start()
    assert publish.parent is not None and publish.parent.span_id == fire.context.span_id
    assert publish.context.trace_id == fire.context.trace_id
    by_name = {s["name"]: s for s in spans}
    run_a, fire_a, run_b = by_name["triggers.run t_a#0"], by_name["triggers.fire t_a"], by_name["triggers.run t_b#0"]
    celery_run_a = by_name["run/tests.observe.a"]
    assert celery_run_a["parent_id"] == _hex(publish.context.span_id, 16)
    assert run_a["parent_id"] == celery_run_a["span_id"]
    assert run_a["kind"] == "INTERNAL"
    assert fire_a["parent_id"] == run_a["span_id"]
    publish_b = by_name["apply_async/tests.observe.b"]
    assert publish_b["parent_id"] == fire_a["span_id"]
    assert by_name["run/tests.observe.b"]["parent_id"] == publish_b["span_id"]
    assert run_b["parent_id"] == by_name["run/tests.observe.b"]["span_id"]
    (message,) = [h for h in headers if h.get("triggers_session") == uid]
    assert [k for k in message if k in ("traceparent", "tracestate", "baggage")] == ["traceparent"]
    assert message["traceparent"].split("-")[2] == _hex(publish.context.span_id, 16)
