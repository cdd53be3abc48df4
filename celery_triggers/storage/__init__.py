"""Storage backends, chosen by URL.

==============================  ==================================================================
``memory://``                   in-process (tests, eager runner)
``sqlite:///path.db``           one file, safe across processes (default)
``redis://host:port/db``        production (extra ``[redis]``)
``redis+cluster://host:port``   a Redis Cluster (any node; extra ``[redis]``)
``django-cache://alias``        a Django cache (extra ``[django]``)
``django-db://alias``           the Django project's database (``celery_triggers.contrib.django``)
==============================  ==================================================================

Third-party backends register a scheme through the
``celery_triggers.storages`` entry point (a class taking the URL).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._plugins import plugin_names, resolve_plugin
from ..errors import InvalidStorageURL
from .base import SessionStorage, SessionTxn, StorageBackend, check_uid

__all__ = ["SessionStorage", "SessionTxn", "StorageBackend", "check_uid", "mask_url", "resolve_storage"]

_GROUP = "celery_triggers.storages"
_BUILTIN = {
    "memory": "celery_triggers.storage.memory:MemoryStorage",
    "sqlite": "celery_triggers.storage.sqlite:SQLiteStorage",
    "redis": "celery_triggers.storage.redis:RedisStorage",
    "rediss": "celery_triggers.storage.redis:RedisStorage",
    "redis+cluster": "celery_triggers.storage.redis:RedisStorage",
    "rediss+cluster": "celery_triggers.storage.redis:RedisStorage",
    "django-cache": "celery_triggers.storage.django_cache:DjangoCacheStorage",
    "django-db": "celery_triggers.contrib.django.storage:DjangoDBStorage",
}


#: Query options that hold a secret (redis-py accepts ``?password=``).
_SECRET_OPTIONS = frozenset({"password", "passwd", "pass", "secret", "token"})


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=``
    option) replaced by ``***``, for logs, reprs, errors and output."""
    try:
        parts = urlsplit(url)
        secret_option = any(k.lower() in _SECRET_OPTIONS for k, _ in parse_qsl(parts.query, True))
        if parts.password is None and not secret_option:
            return url  # unchanged (urlunsplit would rewrite sqlite:////abs paths)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        if parts.query:
            query = [(k, "***" if k.lower() in _SECRET_OPTIONS else v) for k, v in parse_qsl(parts.query, True)]
            parts = parts._replace(query=urlencode(query, safe="*"))
    except ValueError:
        return "<unparsable storage URL>"
    return urlunsplit(parts)


def resolve_storage(url: str, **options: Any) -> StorageBackend:
    """Build the backend for ``url`` (``scheme://...``).

    ``options`` (e.g. ``session_ttl``) are passed to backends that use them.
    """
    if not isinstance(url, str) or "://" not in url:
        shown = mask_url(url) if isinstance(url, str) else repr(url)
        raise InvalidStorageURL(f"storage URL must look like 'scheme://...', got {shown!r}")
    scheme = url.split("://", 1)[0]
    cls: type[StorageBackend] | None = resolve_plugin(scheme, _BUILTIN, _GROUP)
    if cls is None:
        known = ", ".join(plugin_names(_BUILTIN, _GROUP))
        raise InvalidStorageURL(f"unknown storage scheme {scheme!r} in {mask_url(url)!r} (known: {known})")
    return cls(url, **options)
