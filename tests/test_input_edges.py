"""Bad input at the edge (issue #13's validation part): a typed error that
names what was wrong, and no state change, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from celery_triggers import ConfigurationError, InvalidKwargs, InvalidName, InvalidSession, resolve_storage

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
    app.triggers.fire("s", "go", {"x": "y" * 50})


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
