"""Every ``triggers_*`` setting once, and the one parser that reads them.

As Celery's own ``celery/app/defaults.py``: each setting is an
:class:`Option` with its default, its type and a one-line doc, and a reader
finds it here. A value may be typed (a Python config) or a string (an
environment variable, an ini file, a config module that reads either):

* booleans by Celery's rules (``celery.utils.serialization.strtobool``:
  ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``, any case);
* numbers from their text (``"30"`` -> 30, ``"2.5"`` -> 2.5); a count must be
  whole, and no number may be below the setting's minimum;
* ``triggers_storages`` from JSON text (``'{"legacy": "django-cache://default"}'``);
* an empty string, like ``None``, leaves the setting at its default.

Anything else is a :class:`ConfigurationError` naming the setting, raised
when the setting is read.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from celery import Celery
from celery.utils.serialization import strtobool
from kombu.utils.imports import symbol_by_name

from ..core.data import MAX_KWARGS_BYTES
from ..core.dispatch import LOCAL_ALIAS
from ..core.errors import ConfigurationError
from ..storage import mask_url

__all__ = [
    "SETTINGS",
    "TYPES",
    "Option",
    "check",
    "default_storage_url",
    "describe_unknown",
    "parse",
    "read",
    "unknown_settings",
]

#: Every type an :class:`Option` can have.
TYPES = ("string", "bool", "count", "seconds", "aliases", "class")


@dataclass(frozen=True)
class Option:
    """One setting: its default, its type (one of :data:`TYPES`) and what it does."""

    default: Any
    type: str
    doc: str
    #: The default as the settings table (docs/reference/settings.md) shows it (when it is not
    #: the default written as code: a computed default, "off", a unit).
    shown: str | None = None
    #: ``count`` and ``seconds``: the smallest value that makes sense.
    minimum: float = 0
    #: ``seconds``: 0 means off (the default, None).
    zero_is_off: bool = False
    #: ``class``: the class the value must be (or subclass), as a dotted path.
    base: str | None = None

    @property
    def readme_default(self) -> str:
        """How the settings table (docs/reference/settings.md) shows the default."""
        if self.shown is not None:
            return self.shown
        if isinstance(self.default, float) and self.default.is_integer():
            return f"`{int(self.default)}`"
        return f"`{self.default}`"


SETTINGS: Mapping[str, Option] = MappingProxyType(
    {
        "triggers_storage": Option(
            None,
            "string",
            "storage URL (default: a SQLite file in the temp dir, shared by the app's processes on one machine)",
            shown="`sqlite:///<tempdir>/celery-triggers-<app main>.sqlite3`",
        ),
        "triggers_runner": Option("celery", "string", "default runner name (celery, eager, threading or a plugin's)"),
        "triggers_manager_class": Option(
            "celery_triggers.TriggerManager",
            "class",
            "TriggerManager subclass, or its dotted path, used for fires and cascades",
            base="celery_triggers.TriggerManager",
        ),
        "triggers_session_ttl": Option(
            None,
            "seconds",
            "seconds a session lives after its last change (Redis, Django cache); unset or 0: for ever",
            shown="none",
            zero_is_off=True,
        ),
        "triggers_storages": Option(
            {}, "aliases", "other storages a message may name, by alias: {'legacy': 'django-cache://default'}"
        ),
        "triggers_track_started": Option(True, "bool", "record 'running' when a task starts"),
        "triggers_start_retries": Option(
            8, "count", "times a message is retried while storage is unreachable at its start"
        ),
        "triggers_finish_timeout": Option(
            30.0, "seconds", "seconds a worker keeps retrying a finish while storage is unreachable"
        ),
        "triggers_max_kwargs_bytes": Option(
            MAX_KWARGS_BYTES,
            "count",
            "largest encoded trigger kwargs or task result, in bytes",
            shown=f"`{MAX_KWARGS_BYTES}` (1 MiB)",
            minimum=1,
        ),
        "triggers_recover_interval": Option(
            60.0,
            "seconds",
            "seconds between recovery sweeps (one worker at a time sweeps); 0: no sweep",
            zero_is_off=True,
        ),
        "triggers_deadline_interval": Option(
            1.0,
            "seconds",
            "seconds between deadline sweeps (one worker at a time sweeps); a passed deadline fires that late "
            "at most; 0: no sweep",
            zero_is_off=True,
        ),
        "triggers_recover_older_than": Option(
            300.0,
            "seconds",
            "seconds after which the sweep re-sends a scheduled instance (doubling at each re-send), "
            "and judges a running one started by a worker without leases lost",
        ),
        "triggers_publish_confirms": Option(
            True,
            "bool",
            "on an AMQP broker (RabbitMQ), wait for the broker to confirm each message fire sends",
        ),
        "triggers_heartbeat_interval": Option(
            10.0,
            "seconds",
            "seconds between a worker's lease renewals; a running instance is presumed lost after three; 0: no leases",
            zero_is_off=True,
        ),
        "triggers_metrics_port": Option(
            None,
            "count",
            "port a worker serves Prometheus metrics on, at /metrics (with celery_triggers.observe.install(app)); "
            "unset: none",
            shown="none",
            minimum=1,
        ),
        "triggers_metrics_addr": Option(
            "0.0.0.0",  # noqa: S104 - Prometheus scrapes from another host
            "string",
            "address the worker's /metrics listens on",
        ),
    }
)


def read(conf: Mapping[str, Any], name: str) -> Any:
    """Setting ``name`` of an app's ``conf``, parsed (its default when unset)."""
    return parse(name, conf.get(name))


def parse(name: str, value: Any) -> Any:
    """``value`` of setting ``name`` as its type says (the default when
    ``value`` is None or an empty string); a :class:`ConfigurationError`
    naming the setting when it cannot mean anything."""
    option = SETTINGS.get(name)
    if option is None:
        raise ConfigurationError(f"no such setting{_hint(name)}", setting=name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return _resolve(name, option, option.default) if option.type == "class" else option.default
    if option.type == "string":
        if not isinstance(value, str):
            raise ConfigurationError(f"expected a string, got {type(value).__name__} {value!r}", setting=name)
        return value
    if option.type == "bool":
        return _bool(name, value)
    if option.type == "count":
        return _count(name, option, value)
    if option.type == "seconds":
        return _seconds(name, option, value)
    if option.type == "aliases":
        return _aliases(name, value)
    return _resolve(name, option, value)


def check(conf: Mapping[str, Any]) -> None:
    """Parse every setting ``conf`` holds (a worker does at start-up, so a
    wrong value stops it there rather than at its first task)."""
    for name in SETTINGS:
        read(conf, name)


def unknown_settings(conf: Mapping[str, Any]) -> list[str]:
    """The keys of ``conf`` that look like celery-triggers settings but are
    none (a typo is otherwise silently ignored), sorted."""
    return sorted(str(k) for k in conf.keys() if str(k).lower().startswith("triggers_") and k not in SETTINGS)


def describe_unknown(key: str) -> str:
    """The worker's warning about an unknown setting ``key``."""
    return f"unknown setting {key!r} (known: {', '.join(sorted(SETTINGS))}){_hint(key)}"


def _hint(name: str) -> str:
    close = difflib.get_close_matches(str(name).lower(), SETTINGS, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        try:
            return bool(strtobool(value.strip()))
        except TypeError:
            pass
    raise ConfigurationError(
        f"expected a boolean (true/false, yes/no, on/off, 1/0), got {type(value).__name__} {value!r}", setting=name
    )


def _number(name: str, value: Any, what: str) -> float | int:
    """An int or float from a number or its text; never a bool, NaN or infinity."""
    number: float | int
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigurationError(f"expected {what}, got {type(value).__name__} {value!r}", setting=name)
    return number


def _count(name: str, option: Option, value: Any) -> int:
    what = f"a whole number >= {option.minimum:g}"
    if isinstance(value, timedelta):
        raise ConfigurationError(f"expected {what}, got timedelta {value!r}", setting=name)
    number = _number(name, value, what)
    if isinstance(number, float):
        if not number.is_integer():
            raise ConfigurationError(f"expected {what}, got {value!r}", setting=name)
        number = int(number)
    if number < option.minimum:
        raise ConfigurationError(f"expected {what}, got {value!r}", setting=name)
    return number


def _seconds(name: str, option: Option, value: Any) -> float | None:
    what = f"a number of seconds >= {option.minimum:g}" + (" (0: off)" if option.zero_is_off else "")
    number = float(_number(name, value, what))
    if number < option.minimum:
        raise ConfigurationError(f"expected {what}, got {value!r}", setting=name)
    if option.zero_is_off and number == 0:
        return None
    return number


def _masked(value: Any) -> Any:
    """A storage setting's value for an error message: passwords masked."""
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Mapping):
        return {k: mask_url(v) if isinstance(v, str) else v for k, v in value.items()}
    return value


def _aliases(name: str, value: Any) -> dict[str, str]:
    what = "a mapping of alias names to storage URLs, like {'legacy': 'django-cache://default'}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(f"expected {what} (as JSON text), got {_masked(value)!r}", setting=name) from None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and not k.startswith(LOCAL_ALIAS) and isinstance(v, str) and v
        for k, v in value.items()
    ):
        raise ConfigurationError(
            f"expected {what} (an alias may not start with {LOCAL_ALIAS!r}), got {_masked(value)!r}", setting=name
        )
    return dict(value)


def _resolve(name: str, option: Option, value: Any) -> Any:
    """A class given as itself or as its dotted path, checked against ``option.base``."""
    found = value
    if isinstance(value, str):
        try:
            found = symbol_by_name(value)  # type: ignore[no-untyped-call]  # kombu is untyped
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(f"cannot import {value!r}: {exc}", setting=name) from None
    base = symbol_by_name(option.base) if option.base else object  # type: ignore[no-untyped-call]  # kombu is untyped
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ConfigurationError(f"expected a {base.__name__} subclass or its dotted path, got {value!r}", setting=name)
    return found


def default_storage_url(app: Celery) -> str:
    """``sqlite:///<tempdir>/celery-triggers-<app main>.sqlite3``.

    Shared by every process of the app on one machine (worker and producers
    alike); set ``triggers_storage`` for anything else.
    """
    main = (app.main or "default").replace(os.sep, "_")
    return "sqlite:///" + os.path.join(tempfile.gettempdir(), f"celery-triggers-{main}.sqlite3")
