"""Runner selection: ``triggers_runner``, the ``using`` directive, and the
``celery_triggers.runners`` entry point for third-party runners."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celery_triggers import ConfigurationError, Status, UnknownRunner
from celery_triggers.producer.runners import resolve_runner_class, runner_names

from . import runner_plugin
from .conftest import make_app


@pytest.fixture
def plugin_installed(tmp_path: Path) -> Iterator[None]:
    """A real installed distribution (a dist-info folder on sys.path) that
    declares a runner entry point, as a third-party package would."""
    dist = tmp_path / "ct_recording_runner-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ct-recording-runner\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[celery_triggers.runners]\nrecording = tests.runner_plugin:RecordingRunner\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    runner_plugin.SENT.clear()
    yield
    sys.path.remove(str(tmp_path))


def test_a_runner_from_an_entry_point_is_used_by_name(plugin_installed: None) -> None:
    assert "recording" in runner_names()
    assert resolve_runner_class("recording") is runner_plugin.RecordingRunner
    app = make_app()

    @app.task(shared=False, name="tests.remote")
    def remote() -> None: ...

    app.triggers.configure(
        {
            "t_remote": {"after": ["a"], "run": "tests.remote", "using": "recording", "withParams": {"cfg": {"k": 1}}},
            "t_local": {"after": ["a"], "run": "tests.remote"},
        }
    )
    session = app.triggers.session("s")
    session.fire("a", {"x": 1})
    assert runner_plugin.SENT == [("t_remote#0", "tests.remote", {"a": {"x": 1}, "cfg": {"k": 1}})]
    assert session.instances["t_remote#0"].status is Status.SCHEDULED
    assert session.instances["t_local#0"].status is Status.FINISHED  # the app default: eager


def test_unknown_runner_names_are_typed_errors_naming_the_culprit() -> None:
    with pytest.raises(UnknownRunner, match=r"no task runner named 'lambda'.*celery, eager"):
        resolve_runner_class("lambda")
    app = make_app()
    with pytest.raises(ConfigurationError, match=r"t_x.*'using'.*'lambda'"):
        app.triggers.configure({"t_x": {"after": ["a"], "run": "r", "using": "lambda"}})
    assert app.triggers.configs == {}


def test_a_runner_can_be_named_by_dotted_path_and_must_be_a_runner() -> None:
    from .runner_plugin import RecordingRunner

    assert resolve_runner_class("tests.runner_plugin:RecordingRunner") is RecordingRunner
    assert resolve_runner_class("tests.runner_plugin.RecordingRunner") is RecordingRunner
    with pytest.raises(UnknownRunner, match=r"'tests\.runner_plugin:SENT' is a list, not a TaskRunner subclass"):
        resolve_runner_class("tests.runner_plugin:SENT")
    with pytest.raises(UnknownRunner, match=r"no task runner named 'tests\.no_such_module:Runner'"):
        resolve_runner_class("tests.no_such_module:Runner")


def test_the_default_runner_comes_from_the_app_settings() -> None:
    app = make_app(runner="celery")
    assert app.triggers.default_runner == "celery"
    assert make_app().triggers.default_runner == "eager"
