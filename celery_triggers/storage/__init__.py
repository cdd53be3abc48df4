"""Storage backends, chosen by URL.

==============================  =========================================
``memory://``                   in-process (tests, eager runner)
``sqlite:///path.db``           one file, safe across processes (default)
``redis://host:port/db``        production (extra ``[redis]``)
``redis+cluster://host:port``   a Redis Cluster (any node; extra ``[redis]``)
``django-cache://alias``        a Django cache (extra ``[django]``)
==============================  =========================================

Third-party backends register a scheme through the
``celery_triggers.storages`` entry point (a class taking the URL).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import StorageError
from .base import SessionStorage, SessionTxn, StorageBackend, check_uid

__all__ = ["SessionStorage", "SessionTxn", "StorageBackend", "check_uid", "mask_url", "resolve_storage"]

_BUILTIN = {
    "memory": "celery_triggers.storage.memory:MemoryStorage",
    "sqlite": "celery_triggers.storage.sqlite:SQLiteStorage",
    "redis": "celery_triggers.storage.redis:RedisStorage",
    "rediss": "celery_triggers.storage.redis:RedisStorage",
    "redis+cluster": "celery_triggers.storage.redis:RedisStorage",
    "rediss+cluster": "celery_triggers.storage.redis:RedisStorage",
    "django-cache": "celery_triggers.storage.django_cache:DjangoCacheStorage",
}


def _load(target: str) -> type[StorageBackend]:
    module, _, attr = target.partition(":")
    cls: type[StorageBackend] = getattr(import_module(module), attr)
    return cls


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and output)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
    except ValueError:
        return "<unparsable storage URL>"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def resolve_storage(url: str, **options: Any) -> StorageBackend:
    """Build the backend for ``url`` (``scheme://...``).

    ``options`` (e.g. ``session_ttl``) are passed to backends that use them.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(f"storage URL must look like 'scheme://...', got {url!r}")
    scheme = url.split("://", 1)[0]
    target = _BUILTIN.get(scheme)
    if target is None:
        for ep in entry_points(group="celery_triggers.storages"):
            if ep.name == scheme:
                cls: type[StorageBackend] = ep.load()
                return cls(url, **options)
        known = ", ".join(sorted(_BUILTIN))
        raise StorageError(f"unknown storage scheme {scheme!r} in {url!r} (known: {known})")
    return _load(target)(url, **options)
