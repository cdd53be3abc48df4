"""Celery's own outputs of an app's settings show storage URLs masked.

``celery report``, ``celery inspect conf`` (answered by each worker, and
what Flower shows) and ``inspect report`` print ``app.conf`` through one
function, ``celery.app.utils.filter_hidden_settings``: ``Settings.table()``
looks it up by name each time it runs, and ``humanize()`` and
``bugreport()`` go through ``table()``. It censors the settings whose names
it knows (``*PASSWORD*``, ``*SECRET*``, broker and backend URLs); a
``triggers_storage`` URL, or the URLs of ``triggers_storages``, would be
printed with their password. Celery has no hook for further keys.

Why a wrapper of that function, installed by ``Triggers(app)``: it is the
one place every present and future caller goes through (the ``conf``
command, the bug report, ``humanize()``, whoever calls ``table()``), it
runs Celery's own censoring first and changes nothing else, and it masks
only keys named ``triggers_storage``/``triggers_storages`` (also with a
namespace, as ``CELERY_TRIGGERS_STORAGE`` in a Django project), keeping
the host visible as Celery does for ``broker_url``. Replacing the ``conf``
remote-control command and ``app.bugreport`` instead would take two
overrides of Celery internals (one of them process-wide as well) and still
miss ``conf.table()`` and ``conf.humanize()`` called directly.

The wrapper is installed once per process (idempotent: a second call sees
it in place), when an extension is created, never at import.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..storage import mask_url

__all__ = ["censor_settings", "install_censor"]

#: ``triggers_storage`` and ``triggers_storages``, bare or namespaced.
_STORAGE_KEY = re.compile(r"(?:^|_)triggers_storages?$", re.IGNORECASE)
_MARK = "__celery_triggers_censor__"
_lock = threading.Lock()


def censor_settings(settings: Mapping[Any, Any]) -> dict[Any, Any]:
    """``settings`` with the passwords of its storage URLs masked."""
    return {key: _censor(key, value) for key, value in settings.items()}


def _censor(key: Any, value: Any) -> Any:
    if not (isinstance(key, str) and _STORAGE_KEY.search(key)):
        return value
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Mapping):  # triggers_storages: alias -> URL
        return {alias: mask_url(url) if isinstance(url, str) else url for alias, url in value.items()}
    return value


def install_censor() -> None:
    """Wrap ``celery.app.utils.filter_hidden_settings`` so that it also
    masks storage URLs (once per process)."""
    from celery.app import utils

    with _lock:
        original: Callable[[Mapping[Any, Any]], dict[Any, Any]] = utils.filter_hidden_settings
        if getattr(original, _MARK, False):
            return

        def filter_hidden_settings(conf: Mapping[Any, Any]) -> dict[Any, Any]:
            return censor_settings(original(conf))

        filter_hidden_settings.__doc__ = original.__doc__
        setattr(filter_hidden_settings, _MARK, True)
        utils.filter_hidden_settings = filter_hidden_settings
