"""Engine invariants over random configs and random firing sequences."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from celery_triggers.config import TaskConfig
from celery_triggers.state import Status

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
