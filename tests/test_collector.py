"""The cyclic garbage collector paused while a bulk fire plans and settles
(``celery_triggers.producer.collector``), and given back as it was found."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from celery_triggers import Hooks
from celery_triggers.producer import collector
from celery_triggers.producer.collector import collection_paused

from .conftest import make_app


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    """Each test starts with the collector on, and leaves it as it was."""
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_given_back_after_even_when_the_block_raises() -> None:
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), collection_paused():
        1 / 0  # noqa: B018 - raises
    assert gc.isenabled()


def test_an_application_that_turned_it_off_keeps_it_off() -> None:
    gc.disable()
    with collection_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_and_concurrent_blocks_keep_it_off_until_the_last_ends() -> None:
    inside, leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with collection_paused():
            inside.set()
            leave.wait(10)
            seen.append(gc.isenabled())

    thread = threading.Thread(target=other)
    with collection_paused():
        with collection_paused():
            thread.start()
            assert inside.wait(10)
        assert not gc.isenabled(), "the inner block's end is not the last"
    assert not gc.isenabled(), "the other thread is still inside"
    leave.set()
    thread.join(10)
    assert seen == [False] and gc.isenabled(), "on again when the last block ended"


def _held_in_a_thread() -> tuple[threading.Event, threading.Thread]:
    """A thread inside a paused section until the event returned is set."""
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with collection_paused():  # the first use registers the fork handler
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10) and not gc.isenabled()
    return leave, thread


def test_a_section_that_begins_late_does_not_extend_the_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlapping batches cannot keep the collector off for ever: past
    SHARED_FOR seconds, a new section runs as the collector is and the
    pause ends with the sections already in it."""
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the module reads time.monotonic()
    first_out, thread = _held_in_a_thread()
    now[0] += collector.SHARED_FOR / 2
    with collection_paused():  # joins: the pause is young
        pass
    assert not gc.isenabled(), "the first section is still inside"
    now[0] += collector.SHARED_FOR
    with collection_paused():  # does not join: the pause is old
        first_out.set()
        thread.join(10)
        assert gc.isenabled(), "the pause ended with the first section, not with this one"
    assert gc.isenabled()


def test_a_forked_child_gets_its_collector_back() -> None:
    """A fork while another thread is inside a section: the child has no such
    thread, so its collector is on again and its count starts from zero."""
    import os

    leave, thread = _held_in_a_thread()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: a fork with threads, on purpose
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once
            before = gc.isenabled()
            with collection_paused():
                paused = not gc.isenabled()
            os.write(write, f"{before} {paused} {gc.isenabled()}".encode())
            os._exit(0)
    os.close(write)
    report = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    leave.set()
    thread.join(10)
    assert report == "True True True", report
    assert gc.isenabled()


class _Seen(Hooks):
    """Whether the collector ran while the batch announced its fires."""

    def __init__(self) -> None:
        self.enabled: list[bool] = []

    def fired(self, session: Any, trigger: str, kwargs: dict[str, Any], scheduled: list[Any]) -> None:
        self.enabled.append(gc.isenabled())


def _app(hooks: Hooks) -> Any:
    """Celery's runner on an in-memory broker: the bulk path (an eager runner fires one by one)."""
    app = make_app("memory://", runner="celery", task_default_queue="unconsumed")  # not another test's worker's

    @app.task(name="proj.page", shared=False)
    def page() -> None: ...

    app.triggers.configure({"t_page": {"after": ["page"], "run": "proj.page"}})
    app.triggers.add_hooks(hooks)
    return app


def test_fire_many_and_afire_many_pause_it_while_they_settle_and_give_it_back() -> None:
    seen = _Seen()
    app = _app(seen)
    results = app.triggers.fire_many([(f"gc-{n}", "page", {"n": n}) for n in range(20)])
    assert all(r.ok and [i.name for i in r.scheduled] == ["t_page#0"] for r in results)
    assert seen.enabled == [False] * 20 and gc.isenabled()
    seen.enabled.clear()
    results = asyncio.run(app.triggers.afire_many([(f"agc-{n}", "page", {"n": n}) for n in range(20)]))
    assert all(r.ok for r in results) and seen.enabled == [False] * 20 and gc.isenabled()


def test_a_batch_that_raises_gives_it_back() -> None:
    class Boom(Hooks):
        def fired(self, session: Any, trigger: str, kwargs: dict[str, Any], scheduled: list[Any]) -> None:
            raise RuntimeError("a hook's bug")

    app = _app(Boom())
    with pytest.raises(RuntimeError, match="a hook's bug"):
        app.triggers.fire_many([("boom", "page")])
    assert gc.isenabled()
