"""Bad input at the edge: a typed error that
names what was wrong, and no state change, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_triggers import (
    ConfigurationError,
    InvalidKwargs,
    InvalidName,
    InvalidSession,
    TriggersWarning,
    resolve_storage,
)

from .conftest import make_app


def deep(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("   ", "must not be only whitespace"),
        ("t" * 257, "257 characters long, more than 256"),
        ("bad\ud800", "lone surrogate"),
        (None, "must be a non-empty string"),
    ],
)
def test_bad_trigger_names_are_refused(storage_url: str, name: object, message: str) -> None:
    app = make_app(storage_url)
    session = app.triggers.session("s")
    with pytest.raises(InvalidName, match=message):
        session.fire(name)
    assert "s" not in app.triggers.storage.sessions()


@pytest.mark.parametrize(
    ("uid", "message"),
    [(" \t", "only whitespace"), ("u" * 5_000_000, "more than 1024"), ("s\udfff", "lone surrogate")],
)
def test_bad_session_uids_are_refused(uid: str, message: str) -> None:
    app = make_app()
    with pytest.raises(InvalidSession, match=message):
        app.triggers.fire(uid, "go")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (deep(10_000), "nested more than 100 levels deep"),
        ({"a": {"b": {1: "x"}}}, r"keys must be strings, got 1 at a\.b"),
        ({"big": "x" * 2_000_000}, "encode to 2000010 bytes, more than 1048576"),
        ({"s": "\ud800"}, "lone surrogate"),
    ],
)
def test_bad_kwargs_are_refused_and_change_nothing(storage_url: str, kwargs: dict[str, object], message: str) -> None:
    app = make_app(storage_url)
    app.triggers.configure({"t_x": {"after": ["go"], "run": "x"}})
    session = app.triggers.session("s")
    with pytest.raises(InvalidKwargs, match=message):
        session.fire("go", kwargs)
    assert session.instances == {} and "s" not in app.triggers.storage.sessions()


def test_the_size_limit_is_a_setting() -> None:
    app = make_app(triggers_max_kwargs_bytes=100)
    with pytest.raises(InvalidKwargs, match="more than 100"):
        app.triggers.fire("s", "go", {"x": "y" * 200})
    with pytest.warns(TriggersWarning, match="no trigger task is configured"):  # accepted: this app has no tasks
        app.triggers.fire("s", "go", {"x": "y" * 50})
    assert app.triggers.session("s").all_latest_kwargs() == {"go": {"x": "y" * 50}}


def test_bad_storage_urls_name_the_part_at_fault(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="database 'notanint' is not a number"):
        resolve_storage("redis://:secret@127.0.0.1:6379/notanint")
    with pytest.raises(ConfigurationError) as info:
        resolve_storage("redis://:secret@127.0.0.1:6379/notanint")
    assert "secret" not in str(info.value), "the password is masked"
    missing = tmp_path / "missing" / "dir"
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_storage(f"sqlite:///{missing / 'x.db'}")
    assert not missing.parent.exists(), "nothing was created"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:pw@h:1/0?prefix=p", "redis://user:***@h:1/0?prefix=p"),
        ("rediss+cluster://h:1?password=pw&prefix=p", "rediss+cluster://h:1?password=***&prefix=p"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_mask_url_hides_passwords_in_user_part_and_options(url: str, shown: str) -> None:
    from celery_triggers.storage import mask_url

    assert mask_url(url) == shown


#: Names that could forge a line of output or disguise one: newline,
#: carriage return, a terminal escape, a bidi override, a tab, NUL, a line separator.
FORGING = ["inj\nFAKE-LINE injected", "a\rFAKE", "\x1b[2Jx", "x\u202egnp.exe", "tab\there", "nul\x00", "ls\u2028x"]


@pytest.mark.parametrize("text", FORGING)
def test_names_that_could_forge_output_are_refused_at_fire(text: str) -> None:
    app = make_app()
    app.triggers.configure({"t_x": {"after": ["go"], "run": "x"}})
    with pytest.raises(InvalidSession, match=r"a session UID holds a control character \("):
        app.triggers.fire(text, "go")
    with pytest.raises(InvalidName, match=r"a trigger name holds a control character \("):
        app.triggers.fire("s", text)
    with pytest.raises(InvalidSession, match="holds a control character"):
        app.triggers.session(text).update_configuration({"t_y": {"after": ["go"], "run": "y"}})
    assert app.triggers.storage.sessions() == [], "nothing was stored"


def test_fire_many_refuses_such_names_per_event_on_every_backend(storage_url: str) -> None:
    app = make_app(storage_url, runner="celery")
    app.triggers.configure({"t_x": {"after": ["go"], "run": "x"}})
    results = app.triggers.fire_many([("inj\nFAKE-LINE injected", "go"), ("s", "go\x1b[2J"), ("s", "other")])
    assert [type(r.error) for r in results] == [InvalidSession, InvalidName, type(None)]
    assert "inj\nFAKE-LINE injected" not in app.triggers.storage.sessions()
    assert "'inj\\nFAKE-LINE injected'" in str(results[0].error), "the error shows the UID escaped"


@pytest.mark.parametrize(
    ("configs", "fragment"),
    [
        ({"t_x\nFAKE": {"after": ["go"], "run": "x"}}, r"a trigger task name holds a control character (\n)"),
        ({"t_x": {"after": ["go\x1b[2J"], "run": "x"}}, r"directive 'after': a trigger name holds a control"),
        ({"t_x": {"after": ["go"], "unless": ["a\rb"], "run": "x"}}, "directive 'unless': a trigger name holds"),
        ({"t_x": {"after": ["go"], "andEvery": "e\u202e", "run": "x"}}, r"directive 'andEvery': a trigger name"),
        ({"t_x": {"after": ["go"], "run": "proj.x\ny"}}, "directive 'run': the Celery task name holds"),
    ],
)
def test_config_names_that_could_forge_output_are_refused(configs: dict[str, object], fragment: str) -> None:
    import re

    app = make_app()
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        app.triggers.configure(configs)
    assert dict(app.triggers.configs) == {}
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        app.triggers.session("s").update_configuration(configs)
    assert "s" not in app.triggers.storage.sessions()


def test_a_decorated_task_named_with_a_newline_is_refused() -> None:
    from celery_triggers import trigger_task

    app = make_app()
    with pytest.raises(ConfigurationError, match="holds a control character"):

        @trigger_task(after=["go"], name="t_x\nFAKE")
        @app.task(shared=False, name="p.x")
        def x() -> None: ...


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_infinity_in_kwargs_names_the_field(bad: float) -> None:
    from celery_triggers.core.data import normalize_kwargs

    with pytest.raises(InvalidKwargs, match=r"trigger 'scored'.*answers\[1\]\.score") as raised:
        normalize_kwargs({"answers": [{"score": 1.0}, {"score": bad}]}, what="trigger 'scored'")
    assert repr(bad) in str(raised.value)
