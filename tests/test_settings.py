"""The ``triggers_*`` settings: one table, one parser; strings (environment
variables, ini files, config modules) mean what they say, on the app and on
a real worker."""

from __future__ import annotations

import ast
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import ConfigurationError, Status, TriggerManager, trigger_task
from celery_triggers.app.settings import SETTINGS, TYPES, parse
from celery_triggers.testing import wait_until_idle

from .conftest import ROOT, Worker, make_app
from .servers import RedisServer

PACKAGE = ROOT / "celery_triggers"


class OtherManager(TriggerManager):
    pass


#: (setting, value as given, value read). Strings for every type of setting.
READS: list[tuple[str, Any, Any]] = [
    *[("triggers_track_started", text, False) for text in ("false", "False", "no", "0", "off", " OFF ")],
    *[("triggers_track_started", text, True) for text in ("true", "TRUE", "yes", "1", "on", "On")],
    ("triggers_track_started", False, False),
    ("triggers_track_started", 0, False),
    ("triggers_start_retries", "3", 3),
    ("triggers_start_retries", " 0 ", 0),
    ("triggers_start_retries", "5.0", 5),
    ("triggers_start_retries", 2, 2),
    ("triggers_max_kwargs_bytes", "100", 100),
    ("triggers_finish_timeout", "30", 30.0),
    ("triggers_finish_timeout", "2.5", 2.5),
    ("triggers_finish_timeout", "0", 0.0),
    ("triggers_finish_timeout", 7, 7.0),
    ("triggers_finish_timeout", timedelta(minutes=1), 60.0),
    ("triggers_recover_older_than", "1e2", 100.0),
    ("triggers_recover_interval", "1.5", 1.5),
    ("triggers_recover_interval", "0", None),  # 0: off
    ("triggers_recover_interval", "", 60.0),  # empty: the default
    ("triggers_deadline_interval", "0.5", 0.5),
    ("triggers_deadline_interval", "0", None),  # 0: off
    ("triggers_heartbeat_interval", "2.5", 2.5),
    ("triggers_publish_confirms", "off", False),
    ("triggers_heartbeat_interval", "0", None),  # 0: no leases
    ("triggers_session_ttl", "3600", 3600.0),
    ("triggers_session_ttl", "0", None),
    ("triggers_storages", '{"legacy": "memory://"}', {"legacy": "memory://"}),
    ("triggers_storages", {"legacy": "memory://"}, {"legacy": "memory://"}),
    ("triggers_storages", "", {}),
    ("triggers_manager_class", f"{__name__}:OtherManager", OtherManager),
    ("triggers_manager_class", f"{__name__}.OtherManager", OtherManager),
    ("triggers_manager_class", OtherManager, OtherManager),
    ("triggers_manager_class", "", TriggerManager),
    ("triggers_runner", "threading", "threading"),
    ("triggers_runner", "", "celery"),
    ("triggers_storage", "sqlite:///x.db", "sqlite:///x.db"),
    ("triggers_metrics_port", "9100", 9100),
    ("triggers_metrics_port", "", None),
    ("triggers_metrics_addr", "127.0.0.1", "127.0.0.1"),
    ("triggers_metrics_addr", "", "0.0.0.0"),
]

#: (setting, value, what the error says after "setting <name>: ").
REFUSED: list[tuple[str, Any, str]] = [
    ("triggers_track_started", "maybe", "expected a boolean (true/false, yes/no, on/off, 1/0), got str 'maybe'"),
    ("triggers_track_started", 2, "expected a boolean"),
    ("triggers_track_started", "n", "expected a boolean"),  # not one of Celery's words
    ("triggers_track_started", [], "expected a boolean"),
    ("triggers_start_retries", "many", "expected a whole number >= 0, got str 'many'"),
    ("triggers_start_retries", "2.5", "expected a whole number >= 0, got '2.5'"),
    ("triggers_start_retries", "-1", "expected a whole number >= 0, got '-1'"),
    ("triggers_start_retries", True, "expected a whole number >= 0, got bool True"),
    ("triggers_max_kwargs_bytes", "0", "expected a whole number >= 1, got '0'"),
    ("triggers_finish_timeout", "soon", "expected a number of seconds >= 0, got str 'soon'"),
    ("triggers_finish_timeout", "-1", "expected a number of seconds >= 0, got '-1'"),
    ("triggers_finish_timeout", "nan", "expected a number of seconds >= 0, got str 'nan'"),
    ("triggers_finish_timeout", "inf", "expected a number of seconds >= 0, got str 'inf'"),
    ("triggers_recover_older_than", -5, "expected a number of seconds >= 0, got -5"),
    ("triggers_publish_confirms", "sometimes", "expected a boolean"),
    ("triggers_heartbeat_interval", "often", "expected a number of seconds >= 0 (0: off), got str 'often'"),
    ("triggers_recover_interval", "-1", "expected a number of seconds >= 0 (0: off), got '-1'"),
    ("triggers_deadline_interval", "soon", "expected a number of seconds"),
    ("triggers_session_ttl", "an hour", "expected a number of seconds >= 0 (0: off), got str 'an hour'"),
    ("triggers_storages", "legacy=memory://", "expected a mapping of alias names to storage URLs"),
    ("triggers_storages", '["memory://"]', "expected a mapping of alias names to storage URLs"),
    ("triggers_storages", {"~0": "memory://"}, "an alias may not start with '~'"),
    ("triggers_manager_class", "no.such.Manager", "cannot import 'no.such.Manager'"),
    ("triggers_manager_class", "celery_triggers.Instance", "expected a TriggerManager subclass or its dotted path"),
    ("triggers_runner", 3, "expected a string, got int 3"),
    ("triggers_storage", ["memory://"], "expected a string, got list"),
    ("triggers_metrics_port", "0", "expected a whole number >= 1, got '0'"),
    ("triggers_metrics_port", "http", "expected a whole number >= 1, got str 'http'"),
    ("triggers_metrics_addr", 9100, "expected a string, got int 9100"),
]


@pytest.mark.parametrize(("name", "value", "expected"), READS)
def test_a_setting_given_as_a_string_or_typed_means_what_it_says(name: str, value: Any, expected: Any) -> None:
    app = make_app()
    app.conf.update({name: value})
    read = app.triggers.setting(name)
    assert read == expected and type(read) is type(expected)


@pytest.mark.parametrize(("name", "value", "message"), REFUSED)
def test_a_setting_that_means_nothing_is_a_configuration_error_naming_it(name: str, value: Any, message: str) -> None:
    app = make_app()
    app.conf.update({name: value})
    with pytest.raises(ConfigurationError) as caught:
        app.triggers.setting(name)
    assert str(caught.value).startswith(f"setting {name}: ") and message in str(caught.value)
    assert caught.value.setting == name


def test_every_type_of_setting_is_read_from_a_string() -> None:
    """Each type the table uses has a string case that parses and one that is refused."""
    assert {o.type for o in SETTINGS.values()} == set(TYPES)
    for kind in TYPES:
        names = {n for n, o in SETTINGS.items() if o.type == kind}
        assert any(n in names and isinstance(v, str) and v for n, v, _ in READS), kind
        assert any(n in names for n, _, _ in REFUSED), kind
    assert {n for n, _, _ in READS} == set(SETTINGS) == {n for n, _, _ in REFUSED}


def test_the_extension_properties_read_the_table() -> None:
    app = make_app(
        triggers_track_started="off",
        triggers_finish_timeout="2.5",
        triggers_start_retries="3",
        triggers_max_kwargs_bytes="2048",
        triggers_manager_class=f"{__name__}:OtherManager",
        triggers_storages='{"legacy": "memory://"}',
    )
    app.conf.triggers_runner = "threading"
    ext = app.triggers
    assert ext.track_started is False and ext.finish_timeout == 2.5 and ext.start_retries == 3
    assert ext.max_kwargs_bytes == 2048 and ext.default_runner == "threading"
    assert ext.manager_class is OtherManager and isinstance(ext.session("s"), OtherManager)
    assert ext.storage_aliases == {"legacy": "memory://"}
    defaults_app = make_app()
    defaults_app.conf.triggers_runner = None
    defaults = defaults_app.triggers
    assert defaults.track_started is True and defaults.finish_timeout == 30.0 and defaults.start_retries == 8
    assert defaults.max_kwargs_bytes == 1024 * 1024 and defaults.default_runner == "celery"
    assert defaults.manager_class is TriggerManager and defaults.storage_aliases == {}


def test_a_setting_changed_after_it_was_read_is_read_anew() -> None:
    """Settings are parsed once per value; a new value, or a mapping
    changed in place, means what it says at the next read."""
    app = make_app(triggers_finish_timeout="2.5", triggers_manager_class=f"{__name__}:OtherManager")
    ext = app.triggers
    assert ext.finish_timeout == 2.5 and ext.manager_class is OtherManager
    app.conf.triggers_finish_timeout = "7"
    app.conf.triggers_manager_class = None
    assert ext.finish_timeout == 7.0 and ext.manager_class is TriggerManager
    aliases = {"legacy": "memory://"}
    app.conf.triggers_storages = aliases
    assert ext.storage_aliases == {"legacy": "memory://"}
    aliases["other"] = "memory://"
    assert ext.storage_aliases == {"legacy": "memory://", "other": "memory://"}
    app.conf.triggers_finish_timeout = "soon"
    with pytest.raises(ConfigurationError, match="triggers_finish_timeout"):
        ext.finish_timeout  # noqa: B018 - the property reads the setting


def test_track_started_false_as_a_string_writes_no_start() -> None:
    app = make_app(triggers_track_started="false")
    seen: list[str] = []

    @trigger_task(after=["go"], name="t_x")
    @app.task(shared=False, name="settings.x")
    def x() -> None:
        seen.append(app.triggers.session("u").instance("t_x#0").status.value)

    session = app.triggers.session("u")
    session.fire("go")
    instance = session.instance("t_x#0")
    assert seen == ["scheduled"] and instance.status is Status.FINISHED
    assert "started_at" not in instance.metadata and "attempts" not in instance.metadata


def test_a_size_limit_given_as_a_string_is_applied() -> None:
    from celery_triggers import InvalidKwargs

    app = make_app(triggers_max_kwargs_bytes="100")
    with pytest.raises(InvalidKwargs, match="more than 100"):
        app.triggers.fire("s", "go", {"x": "y" * 200})


def test_no_setting_is_read_around_the_table() -> None:
    """Every ``triggers_*`` setting the package reads goes through the table:
    no ``conf.get("triggers_...")`` or ``conf["triggers_..."]`` elsewhere,
    and every name read through it is in the table."""
    around, read = [], set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Call, ast.Subscript)):
                continue
            text = ast.unparse(node)
            if re.search(r"\bconf\b", text) and "'triggers_" in text and path.name != "settings.py":
                around.append(f"{path.relative_to(ROOT)}: {text}")
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("setting", "settings.read")):
                read |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    assert around == []
    assert read and read <= set(SETTINGS), read - set(SETTINGS)


def test_an_unknown_setting_is_named_with_the_known_ones_and_a_near_miss() -> None:
    from celery_triggers.app.settings import describe_unknown, unknown_settings

    app = make_app(triggers_sesion_ttl=60, triggers_track_started=True, TRIGGERS_RUNER="x")
    assert unknown_settings(app.conf) == ["TRIGGERS_RUNER", "triggers_sesion_ttl"]
    message = describe_unknown("triggers_sesion_ttl")
    assert message.startswith(
        "unknown setting 'triggers_sesion_ttl' (known: triggers_deadline_interval, triggers_finish_timeout, "
    )
    assert message.endswith("; did you mean 'triggers_session_ttl'?")
    with pytest.raises(ConfigurationError, match="setting triggers_sesion_ttl: no such setting; did you mean"):
        parse("triggers_sesion_ttl", 1)


# -- on a real worker ------------------------------------------------------------


def _string_worker(tmp_path: Path, redis_server: RedisServer, db: int, **env: str) -> tuple[Worker, str]:
    """A worker of tests.worker_app on a broker database of its own, whose
    ``TRIGGERS_*`` environment variables become settings, as strings, through
    a config module (``CELERY_CONFIG_MODULE``, what ``celery --config`` sets)."""
    import redis

    broker = f"redis://127.0.0.1:{redis_server.port}/{db}"
    client = redis.Redis(port=redis_server.port, db=db)
    client.flushdb()
    client.close()
    data = tmp_path / "worker"
    data.mkdir()
    return Worker(data, CT_BROKER=broker, CELERY_CONFIG_MODULE="tests.env_config", **env), broker


@pytest.mark.worker
def test_a_worker_configured_from_the_environment_reads_false_as_false(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    worker, broker = _string_worker(
        tmp_path, redis_server, 13, TRIGGERS_TRACK_STARTED="false", TRIGGERS_FINISH_TIMEOUT="2.5"
    )
    producer = make_app(f"sqlite:///{worker.data / 'triggers.sqlite3'}", runner="celery", broker_url=broker)
    producer.triggers.configure({"t_probe": {"after": ["ping", "pong"], "run": "tests.probe"}})
    worker.start()
    try:
        session = producer.triggers.session(f"env-{uuid.uuid4().hex[:8]}")
        session.fire("ping", {"a": 1})
        session.fire("pong", {"b": 2})
        probe = wait_until_idle(session, timeout=30)["t_probe#0"]
    finally:
        worker.stop()
    assert probe.status is Status.FINISHED, probe.metadata
    assert probe.result["trigger_kwargs"] == {"ping": {"a": 1}, "pong": {"b": 2}}
    assert "started_at" not in probe.metadata and "attempts" not in probe.metadata  # never recorded running
    log = worker.log.read_text()
    assert "unknown setting 'triggers_sesion_ttl'" in log and "did you mean 'triggers_session_ttl'?" in log
    assert "setting triggers_" not in log


@pytest.mark.worker
def test_a_worker_whose_setting_means_nothing_stops_at_start_naming_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    worker, _ = _string_worker(tmp_path, redis_server, 12, TRIGGERS_TRACK_STARTED="maybe")
    with pytest.raises(AssertionError, match="worker died at start-up"):
        worker.start()
    assert "setting triggers_track_started: expected a boolean" in worker.log.read_text()
