"""Engine invariants over random configs and random firing sequences."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celery_triggers.core.config import TaskConfig
from celery_triggers.core.state import Status
from celery_triggers.producer.runners import Dispatch, TaskRunner

from .conftest import make_app
from .sim import Sim

EXTERNAL = ["a", "b", "c", "d"]
TASKS = [f"t_{n}" for n in range(4)]


@st.composite
def configs(draw: st.DrawFn) -> dict[str, TaskConfig]:
    result: dict[str, TaskConfig] = {}
    for index, name in enumerate(TASKS):
        # A task may wait for external triggers and for earlier tasks (no cycles).
        pool = EXTERNAL + TASKS[:index]
        after = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        and_every = draw(st.none() | st.sampled_from(EXTERNAL + TASKS[:index]))
        unless = draw(st.lists(st.sampled_from(EXTERNAL), max_size=2, unique=True))
        result[name] = TaskConfig(name=name, run=name, after=tuple(after), and_every=and_every, unless=tuple(unless))
    return result


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("fire"), st.sampled_from(EXTERNAL), st.integers(0, 3)),
        st.tuples(st.just("run"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("replay"), st.integers(0, 50), st.just(0)),
    ),
    max_size=40,
)


def fired(sim: Sim) -> set[str]:
    return {name for name, record in sim.state.triggers.items() if record.count > 0}


def check_invariants(sim: Sim, ready: list[str], unless_held_before: set[str]) -> None:
    triggers = fired(sim)
    for name in ready:
        instance = sim[name]
        config = sim.configs[instance.task]
        # No instance runs before all its after-triggers fired ...
        assert config.required <= instance.kwargs.keys(), name
        assert config.required <= triggers, name
        # ... nor once its unless condition held (a replay's clone is an
        # explicit decision and runs anyway, as in the original).
        if not instance.metadata.get("parent"):
            assert instance.task not in unless_held_before, name
            assert not (config.unless and set(config.unless) <= triggers), name
    for task, config in sim.configs.items():
        instances = sim.of(task)
        numbers = [i.number for i in instances]
        # Instance numbers are unique and dense per task.
        assert numbers == list(range(len(numbers))), (task, numbers)
        record = sim.state.tasks.get(task)
        assert (record.next_number if record else 0) == len(numbers)
        # A one-shot task never has two non-replayed instances.
        if config.and_every is None:
            live = [i for i in instances if i.status is not Status.REPLAYED]
            assert len(live) <= 1, (task, [i.name for i in instances])


@settings(max_examples=300, deadline=None)
@given(configs(), OPS)
def test_engine_invariants_hold_for_any_config_and_sequence(cfg: dict[str, TaskConfig], ops: list[Any]) -> None:
    sim = Sim(cfg)
    for op, arg, extra in ops:
        held = {t for t, c in cfg.items() if c.unless and set(c.unless) <= fired(sim)}
        before = len(sim.ready)
        if op == "fire":
            sim.fire(arg, {"n": extra})
        elif op == "run":
            scheduled = sorted(n for n, i in sim.state.instances.items() if i.status is Status.SCHEDULED)
            if not scheduled:
                continue
            name = scheduled[arg % len(scheduled)]
            sim.start(name)
            if extra:
                sim.finish(name, {"from": name})
            else:
                sim.fail(name)
        else:
            failed = sorted(n for n, i in sim.state.instances.items() if i.status is Status.FAILED)
            if not failed:
                continue
            sim.replay(failed[arg % len(failed)])
        check_invariants(sim, sim.ready[before:], held)


class Hold(TaskRunner):
    """Sends nothing: records what the manager dispatched, and the test plays
    the worker through the manager's public lifecycle API."""

    name = "hold"
    sent: ClassVar[list[str]] = []

    def dispatch(self, items: list[Dispatch]) -> None:
        Hold.sent.extend(item.instance.name for item in items)


def _pick(names: list[str], index: int) -> str | None:
    return sorted(names)[index % len(names)] if names else None


def _with(sim: Sim, *statuses: Status) -> list[str]:
    return [n for n, i in sim.state.instances.items() if i.status in statuses]


def _view(instances: Any) -> dict[str, tuple[str, Any, Any]]:
    return {n: (i.status.value, i.kwargs, i.result) for n, i in instances.items()}


MANAGER_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("fire"), st.sampled_from(EXTERNAL), st.integers(0, 3)),
        st.tuples(st.just("run"), st.integers(0, 50), st.sampled_from(["finish", "fail", "retry", "skip"])),
        st.tuples(st.just("replay"), st.integers(0, 50), st.just(None)),
        st.tuples(st.just("skip_failed"), st.integers(0, 50), st.booleans()),
        st.tuples(st.just("set_status"), st.integers(0, 50), st.tuples(st.sampled_from(list(Status)), st.booleans())),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), MANAGER_OPS)
def test_the_manager_over_partial_snapshots_agrees_with_the_engine_on_full_ones(
    cfg: dict[str, TaskConfig], ops: list[Any]
) -> None:
    """The production path (the ``Configuration`` index, the partial
    snapshots storage hands out, the manager's lifecycle API) gives exactly
    what the pure engine gives on the whole session, for fire, run, fail,
    retry, skip, replay and status overrides; and dispatches exactly the
    instances the engine made ready."""
    app = make_app("memory://", runner=f"{__name__}:Hold")
    app.triggers.configure({name: config.to_dict() for name, config in cfg.items()})
    session = app.triggers.session(f"prop-{uuid.uuid4()}")
    sim = Sim(cfg)
    Hold.sent.clear()
    overridden = False
    for op, index, extra in ops:
        held = {t for t, c in cfg.items() if c.unless and set(c.unless) <= fired(sim)}
        before = len(sim.ready)
        name: str | None = None
        if op == "fire":
            sim.fire(index, {"n": extra})
            session.fire(index, {"n": extra})
        elif op == "run":
            name = _pick(_with(sim, Status.SCHEDULED), index)
            if name is None:
                continue
            sim.start(name)
            session.start_instance(name, session.instance(name).metadata["task_id"])
            if extra == "finish":
                sim.finish(name, {"from": name})
                session.finish_instance(name, None, {"from": name})
            elif extra == "fail":
                sim.fail(name)
                session.fail_instance(name, None, {"exc_type": "ValueError"})
            elif extra == "retry":
                sim.retry(name)
                session.retry_instance(name)
            else:
                sim.skip_running(name, True, {"skipped": name})
                session.skip_running_instance(name, True, {"skipped": name})
        elif op in ("replay", "skip_failed"):
            name = _pick(_with(sim, Status.FAILED), index)
            if name is None:
                continue
            if op == "replay":
                sim.replay(name)
                session.replay_failed_instance(name)
            else:
                sim.skip(name, cascade=extra, result={"skipped": name})
                session.skip_failed_instance(name, cascade=extra, result={"skipped": name})
        else:
            name = _pick(list(sim.state.instances), index)
            if name is None:
                continue
            status, cascade = extra
            sim.set_status(name, status, cascade)
            session.update_instance_status(name, status, cascade=cascade)
        assert _view(session.instances) == _view(sim.state.instances), (op, name)
        assert Hold.sent == sim.ready, (op, name)
        overridden = overridden or op == "set_status"
        if not overridden:  # an operator's override may break the rules on purpose
            check_invariants(sim, sim.ready[before:], held)
