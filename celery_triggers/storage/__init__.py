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

The contract is :mod:`.base`; the Django backends live with the Django app
(:mod:`celery_triggers.contrib.django`), found here by their dotted path.

May import: :mod:`celery_triggers.core` only (and the storage clients).
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidStorageURL
from ..core.plugins import plugin_names, resolve_plugin
from .base import SessionStorage, StorageBackend
from .txn import SessionTxn, check_uid
from .urls import django_alias, mask_url

__all__ = [
    "SessionStorage",
    "SessionTxn",
    "StorageBackend",
    "check_uid",
    "django_alias",
    "mask_url",
    "resolve_storage",
]

_GROUP = "celery_triggers.storages"
_BUILTIN = {
    "memory": "celery_triggers.storage.memory:MemoryStorage",
    "sqlite": "celery_triggers.storage.sqlite:SQLiteStorage",
    "redis": "celery_triggers.storage.redis:RedisStorage",
    "rediss": "celery_triggers.storage.redis:RedisStorage",
    "redis+cluster": "celery_triggers.storage.redis:RedisStorage",
    "rediss+cluster": "celery_triggers.storage.redis:RedisStorage",
    "django-cache": "celery_triggers.contrib.django.cache:DjangoCacheStorage",
    "django-db": "celery_triggers.contrib.django.storage:DjangoDBStorage",
}


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
