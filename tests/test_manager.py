"""The manager and Celery integration on the eager runner (in-process)."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest
from celery import Celery

from celery_triggers import (
    ConfigurationError,
    InvalidKwargs,
    InvalidName,
    NotInTriggerTask,
    Status,
    TriggerManager,
    Triggers,
    TriggersError,
    current_context,
    trigger_task,
)

from .conftest import make_app


def survey_app(storage: str = "memory://") -> tuple[Celery, list[str]]:
    app = make_app(storage)
    runs: list[str] = []

    @trigger_task(after=["startSession", "observationsReceived"], name="t_createApplicant")
    @app.task(shared=False, name="proj.create_applicant")
    def create_applicant(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
        runs.append(current_context().instance_name)
        return {"applicant_id": trigger_kwargs["startSession"]["id"]}

    @trigger_task(after=[create_applicant, "sessionFinalized"], name="t_computeScore")
    @app.task(shared=False, name="proj.compute_score")
    def compute_score(trigger_kwargs: dict[str, Any]) -> int:
        runs.append(current_context().instance_name)
        return 99

    return app, runs


def test_survey_runs_and_cascades_on_the_eager_runner(storage_url: str) -> None:
    app, runs = survey_app(storage_url)
    session = app.triggers.session("s1")
    assert session.fire("sessionFinalized") == []
    assert session.fire("observationsReceived", {"n": 3}) == []
    scheduled = session.fire("startSession", {"id": "A1"})
    assert [i.name for i in scheduled] == ["t_createApplicant#0"]
    assert runs == ["t_createApplicant#0", "t_computeScore#0"]
    instances = session.instances
    assert {n: i.status for n, i in instances.items()} == {
        "t_computeScore#0": Status.FINISHED,
        "t_createApplicant#0": Status.FINISHED,
    }
    assert instances["t_computeScore#0"].kwargs == {"t_createApplicant": {"applicant_id": "A1"}, "sessionFinalized": {}}
    assert instances["t_computeScore#0"].result == 99
    assert [i.name for i in session.instances_of_task("t_computeScore")] == ["t_computeScore#0"]


def test_two_sessions_do_not_interfere(storage_url: str) -> None:
    app, runs = survey_app(storage_url)
    one, two = app.triggers.session("one"), app.triggers.session("two")
    one.fire("startSession", {"id": 1})
    two.fire("observationsReceived")
    assert one.instances["t_createApplicant#0"].status is Status.UNSTARTED
    assert two.instances["t_createApplicant#0"].kwargs == {"observationsReceived": {}}
    one.fire("observationsReceived")
    assert one.instances["t_createApplicant#0"].status.value == "finished"
    assert two.instances["t_createApplicant#0"].status is Status.UNSTARTED
    assert runs == ["t_createApplicant#0"]


def test_the_seed_form_of_the_manager_works() -> None:
    app, runs = survey_app()
    storage = app.triggers.storage.bind("seed")
    TriggerManager(storage, app=app).fire("startSession", {"id": 5})
    TriggerManager(storage, app=app).fire("observationsReceived")
    assert runs == ["t_createApplicant#0"]
    # Without app=, the manager uses Celery's current app (as shared_task
    # does): the suite's app trap makes that an error unless a test sets one.
    with pytest.raises(TriggersError, match="_Trap object"):
        TriggerManager(storage)
    from celery.contrib.testing.app import setup_default_app

    with setup_default_app(app):
        app.set_current()
        assert TriggerManager(storage).instances["t_createApplicant#0"].status is Status.FINISHED
    with pytest.raises(TypeError, match="bound to a session"):
        TriggerManager(app.triggers.storage, app=app)


def test_a_failing_task_is_failed_and_fire_does_not_raise(storage_url: str) -> None:
    app = make_app(storage_url)

    @trigger_task(after=["go"])
    @app.task(shared=False, name="proj.explode")
    def explode() -> None:
        raise KeyError("missing thing")

    @trigger_task(after=["t_explode"])
    @app.task(shared=False, name="proj.after")
    def after() -> None:
        raise AssertionError("must not run")

    session = app.triggers.session("s")
    session.fire("go")
    instance = session.instances["t_explode#0"]
    assert instance.status is Status.FAILED
    assert instance.metadata["exc_type"] == "KeyError"
    assert "missing thing" in instance.metadata["exc_message"]
    assert "KeyError" in instance.metadata["traceback"]
    assert list(session.instances) == ["t_explode#0"]


def test_a_result_that_is_not_json_fails_the_instance_clearly() -> None:
    app = make_app()

    @trigger_task(after=["go"])
    @app.task(shared=False, name="proj.bad_result")
    def bad_result() -> object:
        return object()

    session = app.triggers.session("s")
    session.fire("go")
    instance = session.instances["t_bad_result#0"]
    assert instance.status is Status.FAILED
    assert instance.metadata["exc_type"] == "InvalidKwargs"
    assert "result of t_bad_result#0" in instance.metadata["exc_message"]


def test_non_json_kwargs_are_refused_and_change_nothing(storage_url: str) -> None:
    app, _runs = survey_app(storage_url)
    session = app.triggers.session("s")
    with pytest.raises(InvalidKwargs, match=r"trigger 'startSession'.*JSON"):
        session.fire("startSession", {"when": object()})
    with pytest.raises(InvalidKwargs, match="mapping"):
        session.fire("startSession", ["not", "a", "mapping"])
    with pytest.raises(InvalidKwargs, match="keys must be strings"):
        session.fire("startSession", {1: "x"})
    with pytest.raises(InvalidName, match="a trigger name must be a non-empty string"):
        session.fire("", {})
    assert session.instances == {}
    assert "s" not in app.triggers.storage.sessions()
    session.fire("observationsReceived")
    assert session.instances["t_createApplicant#0"].kwargs == {"observationsReceived": {}}


def test_trigger_kwargs_reach_a_task_that_asks_only_through_the_context() -> None:
    app = make_app()
    seen: list[Any] = []

    @trigger_task(after=["a", "b"], with_params={"scoring": {"model": "Psych 01"}})
    @app.task(shared=False, name="proj.ctx")
    def ctx() -> None:
        context = current_context()
        seen.append((context.session_uid, context.instance_name, context.trigger_kwargs))

    app.triggers.fire("s9", "a", {"x": 1})
    app.triggers.fire("s9", "b")
    assert seen == [("s9", "t_ctx#0", {"a": {"x": 1}, "b": {}, "scoring": {"model": "Psych 01"}})]


def test_current_context_outside_a_trigger_task_is_a_clear_error() -> None:
    with pytest.raises(NotInTriggerTask, match="only available inside"):
        current_context()


def test_installing_twice_is_harmless() -> None:
    app = make_app()
    assert Triggers(app) is app.triggers
    assert Triggers(app) is Triggers.of(app)


def test_not_installed_is_a_clear_error() -> None:
    app = Celery("bare", set_as_current=False)
    with pytest.raises(TriggersError, match=r"Triggers\(app\)"):
        Triggers.of(app)


def test_decorator_names_and_task_objects() -> None:
    app = make_app()

    @trigger_task(after=["a"])
    @app.task(shared=False, name="proj.tasks.first")
    def first() -> None: ...

    @trigger_task(after=[first], name="t_custom", extras={"priority": "high"})
    @trigger_task(after=[first, "b"])
    @app.task(shared=False, name="proj.tasks.second")
    def second() -> None: ...

    configs = app.triggers.configs
    assert set(configs) == {"t_first", "t_second", "t_custom"}
    assert configs["t_second"].after == ("t_first", "b")
    assert configs["t_custom"].after == ("t_first",)
    assert configs["t_custom"].run == "proj.tasks.second"
    assert dict(configs["t_custom"].extras) == {"priority": "high"}
    with pytest.raises(ConfigurationError, match=r"t_second.*give the second one another name"):
        trigger_task(after=["z"])(second)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"after": "a"}, "directive 'after': expected a list"),
        ({"after": [1]}, "directive 'after'"),
        ({"after": ["a"], "andevery": "p"}, "unknown keyword(s) 'andevery' (did you mean 'and_every'?)"),
        ({"after": ["a"], "With_Params": {}}, "'With_Params' (did you mean 'with_params'?)"),
        ({"after": ["a"], "extras": ["x"]}, "extras must be a dict of custom directives, got list"),
        ({"after": ["a"], "with_params": {"model": "x"}}, "dict of dicts"),
        ({"after": ["a"], "using": "nope"}, "no task runner named 'nope'"),
    ],
)
def test_decorator_rejects_bad_directives_without_registering(kwargs: dict[str, Any], fragment: str) -> None:
    app = make_app()

    @app.task(shared=False, name="proj.victim")
    def victim() -> None: ...

    with pytest.raises(ConfigurationError, match="t_victim") as info:
        trigger_task(**kwargs)(victim)
    assert fragment in str(info.value)
    assert app.triggers.configs == {}


def test_decorating_something_else_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"above @app\.task"):
        trigger_task(after=["a"])(lambda: None)


def test_configure_accepts_the_seed_format_all_or_nothing() -> None:
    app = make_app()

    @app.task(shared=False, name="proj.create")
    def create() -> str:
        return "ok"

    with pytest.raises(ConfigurationError, match="t_bad"):
        app.triggers.configure({"t_ok": {"after": ["a"], "run": "proj.create"}, "t_bad": {"run": 1}})
    assert app.triggers.configs == {}
    app.triggers.configure({"t_createApplicant": {"after": ["a"], "run": "proj.create"}})
    app.triggers.fire("s", "a")
    assert app.triggers.session("s").instances["t_createApplicant#0"].result == "ok"


def test_the_default_storage_is_a_sqlite_file_shared_by_the_apps_processes() -> None:
    import tempfile

    from celery_triggers import default_storage_url

    app = Celery("proj.default", set_as_current=False)
    ext = Triggers(app)
    url = ext.storage_url
    assert url == default_storage_url(app)
    assert url == "sqlite:///" + tempfile.gettempdir() + "/celery-triggers-proj.default.sqlite3"
    assert type(ext.storage).__name__ == "SQLiteStorage"


def test_every_error_is_a_triggers_error_named_for_what_went_wrong() -> None:
    """A conflict that exhausted its retries and a bad status name are
    typed, catchable as TriggersError (the CLI prints one line for them)."""
    from celery_triggers import Conflict, InvalidStatus, StorageBackend, TriggersError
    from celery_triggers.core.errors import IllegalTransition

    assert issubclass(Conflict, TriggersError) and issubclass(InvalidStatus, TriggersError)
    assert not issubclass(InvalidStatus, IllegalTransition)

    backend = make_app().triggers.storage
    assert isinstance(backend, StorageBackend)
    backend.max_retries = 3

    def always_conflicts(txn: Any) -> None:
        raise Conflict("another writer won")

    with pytest.raises(Conflict, match="session 's': gave up after 3 conflicting attempts"):
        backend.atomic("s", always_conflicts)
    session = make_app().triggers.session("s")
    with pytest.raises(InvalidStatus, match="'done' is not a status"):
        session.update_instance_status("t_x#0", "done")


def test_a_refused_dispatch_still_signals_the_fire_and_reaches_every_runner() -> None:
    """Every runner gets its instances even when another refuses, the
    error names every instance not sent, and the committed fire is still
    signalled (trigger_fired, _post_fire)."""
    from celery_triggers import DispatchError, trigger_fired
    from celery_triggers.producer.runners import Dispatch, TaskRunner, register_runner

    sent: list[str] = []

    class Refusing(TaskRunner):
        def dispatch(self, items: list[Dispatch]) -> None:
            raise DispatchError(f"{self.name} refused", [i.instance.name for i in items])

    class Accepting(TaskRunner):
        def dispatch(self, items: list[Dispatch]) -> None:
            sent.extend(i.instance.name for i in items)

    register_runner("refusing-a", type("RefusingA", (Refusing,), {"name": "refusing-a"}))
    register_runner("refusing-b", type("RefusingB", (Refusing,), {"name": "refusing-b"}))
    register_runner("accepting", Accepting)
    app = make_app()
    app.triggers.configure(
        {
            "t_a": {"after": ["go"], "run": "x", "using": "refusing-a"},
            "t_b": {"after": ["go"], "run": "x", "using": "accepting"},
            "t_c": {"after": ["go"], "run": "x", "using": "refusing-b"},
        }
    )
    signalled: list[str] = []

    def on_fired(sender: Any, trigger: str, **_: Any) -> None:
        signalled.append(trigger)

    trigger_fired.connect(on_fired, weak=False)
    try:
        with pytest.raises(DispatchError) as info:
            app.triggers.fire("s", "go")
    finally:
        trigger_fired.disconnect(on_fired)
    assert sent == ["t_b#0"], "the accepting runner got its instance"
    assert sorted(info.value.instances) == ["t_a#0", "t_c#0"]
    assert "refusing-a refused" in str(info.value) and "refusing-b refused" in str(info.value)
    assert signalled == ["go"], "the committed fire is signalled"
    assert app.triggers.session("s").instances["t_a#0"].status is Status.SCHEDULED


def test_a_task_object_used_before_it_is_a_trigger_task_must_keep_its_default_name() -> None:
    """``after=[task]`` on a task decorated later under another name
    used to wait forever for ``t_<short name>``; now the later decoration is
    refused, and the default name still works."""
    app = make_app()

    @app.task(shared=False, name="late.score")
    def score() -> None: ...

    @trigger_task(after=[score], name="t_report")
    @app.task(shared=False, name="late.report")
    def report() -> None: ...

    assert app.triggers.configs["t_report"].after == ("t_score",)
    with pytest.raises(ConfigurationError, match=r"'t_report' was declared with the task object 'late.score'"):
        trigger_task(after=["go"], name="t_custom")(score)
    assert "t_custom" not in app.triggers.configs
    trigger_task(after=["go"])(score)  # its default name: what t_report waits for
    app.triggers.fire("s", "go")
    assert app.triggers.session("s").instances["t_report#0"].status is Status.FINISHED


def test_the_fire_argument_is_trigger_kwargs_everywhere_and_old_names_warn() -> None:
    app, _ = survey_app()
    app.triggers.fire("s", "startSession", trigger_kwargs={"id": 1})
    session = app.triggers.session("s")
    session.fire(trigger_name="observationsReceived", trigger_kwargs={"n": 2})
    assert session.instance("t_createApplicant#0").kwargs == {
        "startSession": {"id": 1},
        "observationsReceived": {"n": 2},
    }
    with pytest.warns(DeprecationWarning, match="trigger_kwargs="):
        app.triggers.fire("s2", "startSession", kwargs={"id": 3})
    assert app.triggers.session("s2").instance("t_createApplicant#0").kwargs == {"startSession": {"id": 3}}
    with pytest.raises(TypeError, match="both trigger_kwargs and kwargs"):
        app.triggers.fire("s3", "startSession", {"id": 1}, kwargs={"id": 2})
    assert app.triggers.session("s3").instances == {}
    with pytest.warns(DeprecationWarning, match="use instance()"):
        assert session.instances_by_name("t_createApplicant#0").status is Status.FINISHED


def test_the_suite_fails_on_the_package_s_own_use_of_a_deprecated_api() -> None:
    """pyproject's warning filters: a DeprecationWarning attributed to a
    module of the package (its stacklevel points at the package, so the
    package called a deprecated API) is an error; one attributed to a caller
    outside it (a test calling the API on purpose) is only a warning."""
    with pytest.raises(DeprecationWarning, match="inside"):
        warnings.warn_explicit(
            "inside", DeprecationWarning, "inspection.py", 1, module="celery_triggers.session.inspection"
        )
    with pytest.raises(DeprecationWarning, match="top"):
        warnings.warn_explicit("top", DeprecationWarning, "__init__.py", 1, module="celery_triggers")
    with warnings.catch_warnings(record=True) as caught:  # the suite's filters stay in force
        warnings.warn_explicit("outside", DeprecationWarning, "test_x.py", 1, module="tests.test_x")
        warnings.warn_explicit("celery's own", DeprecationWarning, "base.py", 1, module="celery.app.base")
        warnings.warn_explicit("a look-alike", DeprecationWarning, "x.py", 1, module="celery_triggers_x")
    assert [str(w.message) for w in caught] == ["outside", "a look-alike"]  # celery's own are ignored


def test_a_fired_trigger_one_edit_from_a_waited_one_warns_naming_both(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from celery_triggers import TriggersWarning

    ours = logging.getLogger("celery_triggers")
    monkeypatch.setattr(ours, "disabled", False)  # a Django setup earlier in the run disables existing loggers
    monkeypatch.setattr(ours, "propagate", True)
    caplog.set_level(logging.WARNING, logger="celery_triggers")
    app, _ = survey_app()
    session = app.triggers.session("typo")
    with pytest.warns(TriggersWarning, match="'startSesion'.*did you mean 'startSession'") as caught:
        session.fire("startSesion")
    assert caught[0].filename == __file__, "the warning points at the caller's fire"
    assert "did you mean 'startSession'" in caplog.text, "a log line too"
    caplog.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.fire("startSession")  # waited for
        session.fire("somethingElse")  # no near neighbour
        app.triggers.fire("typo", "t_computeScore")  # a task's own name, waited for by none, near none
    assert "did you mean" not in caplog.text


def _unconfigured_warnings(fire: Any) -> list[str]:
    """The TriggersWarnings ``fire()`` gives about a process with no trigger task."""
    from celery_triggers import TriggersWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fire()
    return [str(w.message) for w in caught if issubclass(w.category, TriggersWarning)]


def test_a_fire_with_no_trigger_task_configured_warns_once_per_app(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that never imported its tasks module (a shell, a script):
    its fires can schedule nothing, and it says so once, naming the app."""
    import logging

    from celery_triggers import TriggersWarning

    ours = logging.getLogger("celery_triggers")
    monkeypatch.setattr(ours, "disabled", False)
    monkeypatch.setattr(ours, "propagate", True)
    caplog.set_level(logging.WARNING, logger="celery_triggers")
    app = make_app("memory://")
    with pytest.warns(TriggersWarning, match=r"'orderPlaced'.*no trigger task is configured on app .*import") as got:
        fired = app.triggers.fire("bare", "orderPlaced")
    assert list(fired) == [] and len(got) == 1
    assert got[0].filename == __file__, "the warning points at the caller's fire"
    assert "no trigger task is configured" in caplog.text, "a log line too"
    assert _unconfigured_warnings(lambda: app.triggers.fire("bare-2", "orderPlaced")) == [], "once per app"
    own = make_app("memory://")

    @own.task(shared=False, name="proj.x")
    def x() -> int:
        return 1

    session = own.triggers.session("own")
    session.update_configuration({"t_x": {"after": ["orderPlaced"], "run": "proj.x"}})
    assert _unconfigured_warnings(lambda: session.fire("orderPlaced")) == [], "the session's own configuration"
    survey, _ = survey_app()
    assert _unconfigured_warnings(lambda: survey.triggers.fire("known", "sessionFinalized")) == [], "tasks known"
    other = make_app("memory://")
    assert len(_unconfigured_warnings(lambda: other.triggers.fire("bare", "orderPlaced"))) == 1, "another app"


@pytest.mark.parametrize("runner", ["eager", "celery"])  # celery: the bulk path (eager fires one by one)
def test_every_way_to_fire_warns_when_no_trigger_task_is_configured(runner: str) -> None:
    bulk = make_app("memory://", runner=runner)
    said = _unconfigured_warnings(
        lambda: bulk.triggers.fire_many([("b1", "orderPlaced"), ("b2", "orderPlaced", {"n": 1})])
    )
    assert len(said) == 1 and "no trigger task is configured" in said[0]
    assert bulk.triggers.session("b2").all_latest_kwargs() == {"orderPlaced": {"n": 1}}, "both events fired"
    awaited = make_app("memory://", runner=runner)
    assert len(_unconfigured_warnings(lambda: asyncio.run(awaited.triggers.afire("a1", "orderPlaced")))) == 1


def _line_of(marker: str) -> int:
    """The line of this file that holds ``marker`` (once)."""
    with open(__file__, encoding="utf-8") as source:
        [line] = [n for n, text in enumerate(source, 1) if marker in text and "_line_of" not in text]
    return line


@pytest.mark.parametrize("runner", ["eager", "celery"])  # eager: in a worker thread; celery: the bulk path
def test_asyncio_fires_warn_at_the_line_that_awaits(runner: str) -> None:
    """``afire`` (its calls batched in a task of their own, concurrent ones
    together) and ``afire_many`` give their warnings at the caller's line,
    as ``fire`` does, not at asyncio's or a worker thread's. (A coroutine
    handed to asyncio as a task of its own, ``create_task(afire(...))``,
    has no line of the caller's on its stack: its warnings point at
    asyncio's.)"""
    from celery_triggers import TriggersWarning

    app = make_app("memory://", runner=runner, task_default_queue="unconsumed")

    @trigger_task(after=["startSession"])
    @app.task(shared=False, name="proj.t")
    def t(trigger_kwargs: dict[str, Any]) -> None:
        return None

    bare, bare_too = make_app("memory://", runner=runner), make_app("memory://", runner=runner)

    async def handler(uid: str) -> None:  # a request handler: concurrent ones are fired in one batch
        if uid == "typo-two":
            await app.triggers.afire("typo-two", "startSesion")
        else:
            await app.triggers.afire("typo-three", "startSesion")

    async def main() -> None:
        await app.triggers.afire("typo-one", "startSesion")
        await asyncio.gather(handler("typo-two"), handler("typo-three"))
        await app.triggers.afire_many([("typo-four", "startSesion")])
        await bare.triggers.afire("bare-one", "orderPlaced")
        await bare_too.triggers.afire_many([("bare-two", "orderPlaced")])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
    said = [(w.filename, w.lineno, str(w.message).split("'")[3]) for w in caught if w.category is TriggersWarning]
    calls = {"typo-one": "afire", "typo-two": "afire", "typo-three": "afire", "typo-four": "afire_many"}
    calls |= {"bare-one": "afire", "bare-two": "afire_many"}
    opening = {"afire": "afire(", "afire_many": "afire_many([("}
    assert said == [(__file__, _line_of(f'{opening[call]}"{uid}"'), uid) for uid, call in calls.items()]


@pytest.mark.parametrize("runner", ["eager", "celery"])
def test_a_fire_from_a_receiver_during_an_asyncio_fire_warns_at_the_receivers_line_once(runner: str) -> None:
    """User code run by an ``afire``/``afire_many`` (a signal receiver here,
    called in the batch's task or a worker thread) warns at its own line,
    once, not at the line that awaited, and not never."""
    from celery_triggers import TriggersWarning, trigger_fired

    app = make_app("memory://", runner=runner, task_default_queue="unconsumed")

    @trigger_task(after=["startSession"])
    @app.task(shared=False, name="proj.t")
    def t(trigger_kwargs: dict[str, Any]) -> None:
        return None

    def on_fired(sender: Any, trigger: str, **_: Any) -> None:
        if trigger == "go":
            app.triggers.fire("from-a-receiver", "startSesion")

    async def main() -> None:
        await app.triggers.afire("first", "go")
        await app.triggers.afire_many([("second", "go")])

    trigger_fired.connect(on_fired, weak=False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(main())
    finally:
        trigger_fired.disconnect(on_fired)
    said = [(w.filename, w.lineno) for w in caught if w.category is TriggersWarning]
    assert said == [(__file__, _line_of('fire("from-a-receiver"'))] * 2, "once per receiver call, at its line"


def test_the_warning_of_a_committed_fire_never_makes_it_raise(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warnings as errors (``-W error``, pytest's ``filterwarnings = error``):
    the fire is committed when the warning is said, so it returns, and the
    log line still says it."""
    import logging

    ours = logging.getLogger("celery_triggers")
    monkeypatch.setattr(ours, "disabled", False)
    monkeypatch.setattr(ours, "propagate", True)
    caplog.set_level(logging.WARNING, logger="celery_triggers")
    for runner in ("eager", "celery"):
        app = make_app("memory://", runner=runner)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert list(app.triggers.fire(f"strict-{runner}", "orderPlaced", {"n": 1})) == []
            results = app.triggers.fire_many([(f"strict-{runner}-{n}", "orderPlaced") for n in range(3)])
        assert all(r.ok for r in results) and len(results) == 3
        assert app.triggers.session(f"strict-{runner}").all_latest_kwargs() == {"orderPlaced": {"n": 1}}
    assert caplog.text.count("no trigger task is configured") == 2, "one log line per app"


def test_known_trigger_names_are_computed_once_per_configuration() -> None:
    app, _ = survey_app()
    configs = app.triggers.configs
    with pytest.warns(Warning):
        app.triggers.fire("once", "observationReceived")
    assert app.triggers.configs is configs, "firing rebuilt nothing"
    assert configs.near_trigger("observationReceived") == "observationsReceived"
    assert configs.near_trigger("observationsReceived") is None, "a known name is no typo"


def test_waiting_until_an_unknown_task_or_instance_raises_at_once_naming_it() -> None:
    from celery_triggers import UnknownInstance, UnknownTask, WaitTimeout

    app, _ = survey_app()
    session = app.triggers.session("wait-unknown")
    session.fire("startSession", {"id": 1})
    started = time.monotonic()
    with pytest.raises(UnknownTask, match="'t_nosuch'"):
        session.wait(timeout=5, until="t_nosuch")
    with pytest.raises(UnknownTask, match="'t_nosuch'"):
        session.wait(timeout=5, until="t_nosuch#0")
    with pytest.raises(UnknownInstance, match="'t_createApplicant#x'"):
        session.wait(timeout=5, until="t_createApplicant#x")
    assert time.monotonic() - started < 1, "raised at once, not after the timeout"
    with pytest.raises(WaitTimeout, match="t_createApplicant#0 resolved"):
        session.wait(timeout=0.1, until="t_createApplicant#0")  # a known instance still waits


def test_waiting_on_a_session_that_never_existed_says_so() -> None:
    from celery_triggers import WaitTimeout

    app, _ = survey_app()
    with pytest.raises(WaitTimeout, match="session 'never-fired' does not exist") as raised:
        app.triggers.session("never-fired").wait(timeout=0.1, until="t_createApplicant")
    assert "worker" not in str(raised.value), "no hint about workers for a session nothing was fired into"


def test_an_eager_fire_returns_its_instances_with_their_final_status() -> None:
    app = make_app()

    @trigger_task(after=["go"], name="t_boom")
    @app.task(shared=False, name="proj.boom")
    def boom() -> None:
        raise ValueError("boom")

    @trigger_task(after=["go"], name="t_fine")
    @app.task(shared=False, name="proj.fine")
    def fine() -> int:
        return 1

    fired = app.triggers.fire("eager-final", "go")
    assert {i.name: i.status for i in fired} == {"t_boom#0": Status.FAILED, "t_fine#0": Status.FINISHED}
    assert fired.wait(timeout=1)["t_fine#0"].result == 1
