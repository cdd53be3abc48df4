"""``celery -A proj triggers ...`` on Django projects, as real subprocesses:
the example shop (``DJANGO_SETTINGS_MODULE``, ``django-db://``), the tests'
project (settings configured by its Celery module), and an app whose
storage needs Django settings it was not given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, ExampleRun

CELERY = [sys.executable, "-m", "celery"]
SHOP = ROOT / "examples" / "django_shop"


def celery(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """``celery ARGS`` as an operator runs it: no DJANGO_SETTINGS_MODULE of
    the test process, ``env`` added."""
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [*CELERY, *args], cwd=cwd, env={**environ, **env}, capture_output=True, text=True, timeout=180
    )


@pytest.mark.worker
@pytest.mark.slow
def test_the_django_shop_sessions_are_listed_and_inspected_from_the_command_line(shop_example: ExampleRun) -> None:
    """``python -m examples.django_shop`` runs an order on its worker; then,
    in the project's folder, ``celery -A shop triggers sessions`` and
    ``inspect`` read it from the project's database (``django-db://``)."""
    uid = shop_example.session

    listed = celery("-A", "shop", "triggers", "sessions", "--json", cwd=SHOP, SHOP_DATA=str(shop_example.data))
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["session"] == uid and row["counts"] == {"finished": 3}

    inspected = celery("-A", "shop", "triggers", "inspect", uid, "--json", cwd=SHOP, SHOP_DATA=str(shop_example.data))
    assert inspected.returncode == 0, inspected.stderr
    view = json.loads(inspected.stdout)
    tasks = {t["task"]: t for t in view["tasks"]}
    assert sorted(tasks) == ["t_chargePayment", "t_reserveStock", "t_ship"]
    assert all(t["known"] for t in tasks.values()), "the tasks declared in the project's apps are known"
    assert tasks["t_ship"]["instances"][0]["result"] == "order O-1001 shipped: 3 items, 31.50 EUR charged"

    table = celery("-A", "shop", "triggers", "inspect", uid, cwd=SHOP, SHOP_DATA=str(shop_example.data))
    assert table.returncode == 0 and table.stdout.startswith(
        f"session {uid} (3 instances, 0 unresolved) in django-db://"
    )


def test_the_tests_django_project_is_inspected_from_the_command_line(django_caches: Any) -> None:
    """The tests' project configures Django in its Celery module (no
    settings module): its sessions are read as well."""
    from tests.django_app import eager_app

    uid = f"dj-{uuid.uuid4().hex[:8]}"
    eager_app.triggers.session(uid).fire("applied", {"ok": True})
    listed = celery("-A", "tests.django_app", "triggers", "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["session"]: r["counts"] for r in json.loads(listed.stdout)}[uid] == {"finished": 2}
    inspected = celery("-A", "tests.django_app", "triggers", "inspect", uid, "--json")
    assert inspected.returncode == 0, inspected.stderr
    tasks = {t["task"]: t for t in json.loads(inspected.stdout)["tasks"]}
    assert tasks["t_notify"]["instances"][0]["result"] == "score 7" and tasks["t_notify"]["known"]


def no_django_app(folder: Path) -> dict[str, str]:
    """``nodjango.py`` in ``folder``: an app on ``django-db://`` in no
    Django project; the environment that imports it."""
    (folder / "nodjango.py").write_text(
        "from celery import Celery\n"
        "from celery_triggers import Triggers\n"
        "app = Celery('nodjango', broker='memory://')\n"
        "app.conf.triggers_storage = 'django-db://'\n"
        "Triggers(app)\n"
    )
    return {"PYTHONPATH": f"{folder}{os.pathsep}{ROOT}"}


def test_a_django_storage_without_django_settings_says_what_to_set(tmp_path: Path) -> None:
    """An app on ``django-db://`` run with no Django settings: one line
    that names DJANGO_SETTINGS_MODULE, exit 1."""
    no_django_app(tmp_path)
    for command in (["sessions"], ["inspect", "s-1"]):
        result = celery(
            "-A", "nodjango", "triggers", *command, cwd=tmp_path, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "set DJANGO_SETTINGS_MODULE" in result.stderr and "django-db://" in result.stderr, result.stderr


def test_a_settings_module_that_does_not_import_is_one_clear_line(tmp_path: Path) -> None:
    env = no_django_app(tmp_path)
    result = celery(
        "-A", "nodjango", "triggers", "sessions", cwd=tmp_path, DJANGO_SETTINGS_MODULE="no_such_settings", **env
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "DJANGO_SETTINGS_MODULE" in result.stderr and "no_such_settings" in result.stderr, result.stderr
