"""Trigger tasks whose body returns the ``withParams`` it received, declared
every way a config can be made; shared by the eager runs of
tests/test_params.py and the real worker (tests/worker_app.py).

A config made app-wide (decorator, ``configure``, JSON from a file) must be
declared where the worker imports its app: the worker declares one task per
fixed case in :data:`CASES`. A config made for a session (``update_configuration``,
an override of an app-wide one, a replay under the current one) reaches the
worker through storage, so it can be anything.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery

from celery_triggers import trigger_task

#: The Celery task every echo trigger task runs.
ECHO = "tests.echo_params"
#: How a config is made. The first three are app-wide.
APP_WIDE = ("decorator", "configure", "file")
PATHS = (*APP_WIDE, "session", "override", "replay")
#: Trigger of the session-level paths (no app-wide task of the worker waits for it).
SESSION_TRIGGER = "echoGo"
#: A params key whose ``fail`` makes the body raise (a failure to replay, or
#: an app-wide config that an override must have replaced).
CONTROL = "echoControl"
#: What the body adds to every dict it receives, and appends to every list.
MARK = "__seen__"

#: Params of the worker's app-wide echo tasks: nested dicts and lists, a key
#: that is also the trigger's (merged with its fired kwargs), empty ones.
CASES: tuple[dict[str, Any], ...] = (
    {"p": {"x": {"y": 1}, "l": [1, {"z": 2}]}},
    {"q": {"deep": {"a": {"b": [[], {"c": None}]}}, "s": "text"}, "{trigger}": {"k": {"from": "params"}, "l": [0]}},
    {"p": {}, "e": {"empty": [], "none": {}}},
)


def names(path: str, case: int | None = None) -> tuple[str, str]:
    """(task name, trigger) of ``path``'s echo task (app-wide: per case)."""
    if path in APP_WIDE:
        return f"t_echo_{path}{case}", f"echo_{path}{case}"
    return f"t_echo_{path}", SESSION_TRIGGER


def with_trigger(params: Mapping[str, Any], trigger: str) -> dict[str, Any]:
    """``params`` with the placeholder key ``{trigger}`` named for ``trigger``."""
    return {trigger if key == "{trigger}" else key: value for key, value in params.items()}


def directives(trigger: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A config in the original framework's JSON form."""
    return {"after": [trigger], "run": ECHO, "withParams": params}


def touch(value: Any) -> None:
    """Change every dict and list of ``value`` in place, at every depth."""
    if isinstance(value, dict):
        for item in value.values():
            touch(item)
        value[MARK] = value.get(MARK, 0) + 1
    elif isinstance(value, list):
        for item in value:
            touch(item)
        value.append(MARK)


def echo(trigger_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The body: changes what it received at every depth (a read-only view
    or data shared with the config fails here, or shows in the next
    instance), then returns it."""
    if trigger_kwargs.get(CONTROL, {}).get("fail"):
        raise RuntimeError("failing on purpose (echoControl.fail)")
    touch(trigger_kwargs)
    return trigger_kwargs


def declare(app: Celery, path: str, case: int, params: Mapping[str, Any], folder: Path) -> None:
    """Declare ``path``'s app-wide echo task with ``params`` on ``app``
    (whose Celery task :data:`ECHO` is registered)."""
    name, trigger = names(path, case)
    if path == "decorator":
        trigger_task(after=[trigger], name=name, with_params=params)(app.tasks[ECHO])
    elif path == "configure":
        app.triggers.configure({name: directives(trigger, params)})
    elif path == "file":
        file = folder / f"{name}.json"
        file.write_text(json.dumps({name: directives(trigger, params)}))
        app.triggers.configure(json.loads(file.read_text()))
    else:
        raise ValueError(f"{path!r} is not made app-wide")


def declare_all(app: Celery) -> None:
    """Everything the worker declares: each app-wide path with each case,
    and the app-wide config that the ``override`` path overrides."""
    with tempfile.TemporaryDirectory() as folder:
        for path in APP_WIDE:
            for case, params in enumerate(CASES):
                declare(app, path, case, with_trigger(params, names(path, case)[1]), Path(folder))
    declare_overridden(app)


def declare_overridden(app: Celery) -> None:
    """The app-wide config of the ``override`` path: it fails, so a session
    that did not get its override shows."""
    name, trigger = names("override")
    app.triggers.configure({name: directives(trigger, {CONTROL: {"fail": True}})})
