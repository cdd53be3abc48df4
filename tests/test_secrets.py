"""No storage password in any output: Celery's own ``report`` and
``inspect conf`` (answered by a real worker), the worker's log, reprs, the
CLI, and the errors that refuse a malformed URL or an unreachable storage."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.bin.base import CLIContext
from click.testing import CliRunner

from celery_triggers import ConfigurationError, StorageError, Triggers, TriggersError, resolve_storage
from celery_triggers.cli import triggers
from celery_triggers.storage import mask_url

from .conftest import ROOT, Worker, make_app
from .servers import RedisServer, free_port

SECRET = "pw1SECRET"  # in every URL below; never in what is shown
CELERY = [sys.executable, "-m", "celery"]


def hidden(text: str) -> bool:
    return "pw1" not in text and "SECRET" not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis:/:pw1SECRET@host", "redis:***@host"),
        ("pw1SECRET@host", "***@host"),
        ("redis://:pw1SECRET@[bad", "redis://***@[bad"),
        ("redis://:pw1SECRET@host:notaport/0", "redis://***@host:notaport/0"),
        ("redis://:pw1/SECRET@host/0", "redis://***@host/0"),  # an unescaped "/" in the password
        ("redis://:pw1?SECRET@host/0", "redis://***@host/0"),  # an unescaped "?"
        ("redis://:pw1SECRET", "redis://:***"),
        ("redis://:p@ss@host:1/0", "redis://:***@host:1/0"),
        ("redis://host/0?password=pw1SECRET&prefix=p", "redis://host/0?password=***&prefix=p"),
        ("redis://host/0?PASSWORD=pw1SECRET", "redis://host/0?PASSWORD=***"),
        ("redis://:pw1SECRET@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("sqlite:pw1SECRET@x", "sqlite:***@x"),
        ("sqlite://:pw1SECRET@/tmp/x.db", "sqlite://***@/tmp/x.db"),
        ("django-db://:pw1SECRET@default", "django-db://:***@default"),
        ("django-cache://user:pw1SECRET@default?prefix=p", "django-cache://user:***@default?prefix=p"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),  # a path, not user info
        ("redis://host:1/0?prefix=a@b", "redis://host:1/0?prefix=a@b"),
    ],
)
def test_mask_url_masks_what_may_be_a_password_even_in_a_malformed_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis:/:pw1SECRET@host",
        "pw1SECRET@host",
        "redis://:pw1SECRET@[bad",
        "redis://:pw1SECRET@host:notaport/0",
        "redis://:pw1SECRET",
        "redis://:pw1SECRET@127.0.0.1:1/0?socket_timeout=bad",
        "redis://127.0.0.1:1/x?password=pw1SECRET",
        "sqlite:pw1SECRET@x",
        "sqlite://:pw1SECRET@/tmp/x.db",
        "nosuch://:pw1SECRET@host",
    ],
)
def test_a_malformed_storage_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(TriggersError) as refused:
        resolve_storage(url)
    assert hidden(str(refused.value)), str(refused.value)


@pytest.mark.parametrize("url", ["django-db://:pw1SECRET@default", "django-cache://:pw1SECRET@default"])
def test_a_django_storage_url_with_a_password_is_refused_without_it(django_caches: Any, url: str) -> None:
    """A Django alias takes no user info (the project's settings hold the
    credentials); the refusal does not echo it."""
    with pytest.raises(ConfigurationError, match="no user or password") as refused:
        resolve_storage(url)
    assert hidden(str(refused.value)), str(refused.value)


def test_an_unreachable_storage_with_a_password_is_reported_without_it() -> None:
    """Redis with a password on a closed port: the error, the extension's
    repr and the CLI's error lines name the host, not the password."""
    port = free_port()
    app = make_app(f"redis://:{SECRET}@127.0.0.1:{port}/0")
    with pytest.raises(StorageError) as outage:
        app.triggers.fire("s", "go")
    context = CLIContext(app=app, no_color=True, workdir=None)
    listing = CliRunner().invoke(triggers, ["sessions"], obj=context)
    inspecting = CliRunner().invoke(triggers, ["inspect", "s"], obj=context)
    shown = {"error": str(outage.value), "repr": repr(app.triggers), "sessions": listing.output}
    shown["inspect"] = inspecting.output
    assert listing.exit_code == 1 and inspecting.exit_code == 1, shown
    assert {where: hidden(text) for where, text in shown.items()} == dict.fromkeys(shown, True), shown
    assert all(f"redis://:***@127.0.0.1:{port}/0" in text for text in shown.values()), shown


def test_a_bad_triggers_storages_setting_is_refused_without_its_passwords() -> None:
    app = make_app(triggers_storages={"ok": f"redis://:{SECRET}@h/0", "": f"redis://:{SECRET}@other/0"})
    with pytest.raises(ConfigurationError, match="setting triggers_storages: expected a mapping") as refused:
        app.triggers.storage_for("ok")
    assert hidden(str(refused.value)) and "redis://:***@h/0" in str(refused.value), str(refused.value)


def secret_settings(**more: Any) -> dict[str, Any]:
    return {
        "triggers_storage": f"redis://:{SECRET}@127.0.0.1:6379/0",
        "triggers_storages": {"legacy": f"redis://127.0.0.1:6380/0?password={SECRET}", "plain": "sqlite:///x.db"},
        **more,
    }


def test_celerys_settings_table_report_and_humanize_mask_the_storage_passwords() -> None:
    """What ``inspect conf`` (``conf.table()``) and ``report``
    (``bugreport()``, ``conf.humanize()``) print, in this process."""
    settings = secret_settings()
    app = make_app(settings.pop("triggers_storage"), **settings)
    table = app.conf.table()
    assert table["triggers_storage"] == "redis://:***@127.0.0.1:6379/0"
    assert table["triggers_storages"] == {
        "legacy": "redis://127.0.0.1:6380/0?password=***",
        "plain": "sqlite:///x.db",
    }
    for text in (app.conf.humanize(), app.bugreport(), json.dumps(app.conf.table(with_defaults=True), default=str)):
        assert hidden(text) and "redis://:***@127.0.0.1:6379/0" in text
    assert SECRET in app.conf.table(censored=False)["triggers_storage"], "asking for the raw values still works"


def test_the_django_namespace_keys_are_masked_too() -> None:
    """``config_from_object(settings, namespace="CELERY")``: Celery's table
    holds ``CELERY_TRIGGERS_STORAGE(S)``, not ``triggers_storage``."""
    settings = types.SimpleNamespace(
        CELERY_BROKER_URL="memory://",
        CELERY_TRIGGERS_STORAGE=f"django-cache://user:{SECRET}@default",
        CELERY_TRIGGERS_STORAGES={"legacy": f"redis://:{SECRET}@h:1/0"},
    )
    app = Celery("ns", set_as_current=False)
    app.config_from_object(settings, namespace="CELERY")
    Triggers(app)
    table = app.conf.table()
    assert app.triggers.storage_url == settings.CELERY_TRIGGERS_STORAGE, "the extension reads the namespaced key"
    assert table["CELERY_TRIGGERS_STORAGE"] == "django-cache://user:***@default"
    assert table["CELERY_TRIGGERS_STORAGES"] == {"legacy": "redis://:***@h:1/0"}
    assert hidden(app.bugreport())


def test_the_censor_is_installed_once_by_triggers_and_never_at_import() -> None:
    import celery.app.utils

    make_app()
    installed = celery.app.utils.filter_hidden_settings
    make_app()
    assert celery.app.utils.filter_hidden_settings is installed, "idempotent: wrapped once per process"
    assert installed({"api_key": "k", "x": 1}) == {"api_key": "********", "x": 1}, "Celery's own censoring is kept"
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import celery_triggers, celery_triggers.cli, celery.app.utils as u;"
            "print(u.filter_hidden_settings is u.__dict__['filter_hidden_settings'] and "
            "u.filter_hidden_settings.__module__)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fresh.stdout.strip() == "celery.app.utils", fresh.stderr


@pytest.fixture
def secret_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected redis-server: the broker (db 1) and the storage
    (db 0, and db 2 by alias) of the worker below."""
    (tmp_path / "secret-redis").mkdir()
    server = RedisServer(tmp_path / "secret-redis", password=SECRET)
    server.start()
    yield server
    server.stop()


@pytest.mark.worker
@pytest.mark.slow
def test_celery_report_and_inspect_conf_show_no_storage_password(tmp_path: Path, secret_redis: RedisServer) -> None:
    """``celery -A tests.worker_app report`` and ``inspect conf`` (answered
    by a running worker, as Flower asks it) with the password in the
    storage URL, in an alias's ``?password=`` and in the broker URL."""
    base = f"redis://:{SECRET}@127.0.0.1:{secret_redis.port}"
    env = {
        "CT_BROKER": f"{base}/1",
        "CT_STORAGE": f"{base}/0",
        "CT_STORAGES": json.dumps({"legacy": f"redis://127.0.0.1:{secret_redis.port}/2?password={SECRET}"}),
    }
    worker = Worker(tmp_path, **env)
    worker.start()
    try:
        report = subprocess.run(
            [*CELERY, "-A", "tests.worker_app", "report"],
            cwd=ROOT,
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        node = worker.node  # asked by name, the command returns on its answer, not after its timeout
        conf = subprocess.run(
            [*CELERY, "-A", "tests.worker_app", "inspect", "conf", "--json", "--timeout", "10", "-d", node],
            cwd=ROOT,
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        worker.stop()
    assert report.returncode == 0, report.stderr
    assert conf.returncode == 0, conf.stdout + conf.stderr
    replies = json.loads(conf.stdout)
    (answer,) = replies.values()
    assert answer["triggers_storage"] == f"redis://:***@127.0.0.1:{secret_redis.port}/0"
    assert answer["triggers_storages"] == {"legacy": f"redis://127.0.0.1:{secret_redis.port}/2?password=***"}
    assert f"triggers_storage: 'redis://:***@127.0.0.1:{secret_redis.port}/0'" in report.stdout
    shown = {
        "report": report.stdout + report.stderr,
        "inspect conf": conf.stdout + conf.stderr,
        "worker log": worker.log.read_text(),
    }
    assert {where: SECRET in text for where, text in shown.items()} == dict.fromkeys(shown, False)


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.parametrize(
    "storage",
    ["redis://:pw1SECRET@127.0.0.1:{closed}/0", "redis:/:pw1SECRET@127.0.0.1:{closed}", "redis://:pw1SECRET@[bad"],
)
def test_a_worker_refusing_its_storage_at_start_up_does_not_log_the_password(
    tmp_path: Path, redis_server: RedisServer, storage: str
) -> None:
    """The worker's start-up check fails loudly on an unreachable or
    malformed storage (an unreachable one after its retries, here one, as
    Celery retries its broker); its log names the storage masked."""
    url = storage.format(closed=free_port())
    broker = redis_server.url.rsplit("/", 1)[0] + "/1"
    worker = Worker(tmp_path, CT_BROKER=broker, CT_STORAGE=url, CT_BROKER_MAX_RETRIES="1")
    with pytest.raises(AssertionError, match="worker died at start-up"):
        worker.start()
    log = worker.log.read_text()
    assert "celery_triggers.core.errors" in log, log  # it was our check that stopped it
    assert hidden(log), log
    assert mask_url(url) in log
