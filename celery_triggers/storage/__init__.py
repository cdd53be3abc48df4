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

import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .._plugins import plugin_names, resolve_plugin
from ..errors import InvalidStorageURL
from .base import SessionStorage, SessionTxn, StorageBackend, check_uid

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
    "django-cache": "celery_triggers.storage.django_cache:DjangoCacheStorage",
    "django-db": "celery_triggers.contrib.django.storage:DjangoDBStorage",
}


#: Query options that hold a secret (redis-py accepts ``?password=``).
_SECRET_OPTIONS = frozenset({"password", "passwd", "pass", "secret", "token"})
_SECRET_OPTION = re.compile(rf"([?&;](?:{'|'.join(sorted(_SECRET_OPTIONS))})=)[^&;#]*", re.IGNORECASE)
_AUTHORITY = re.compile(r"^([^:/?#@]+://)([^/?#]*)(.*)$", re.DOTALL)
_MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=``
    option) replaced by ``***``, for logs, reprs, errors and output; the
    scheme, user, host and path stay visible, as Celery shows a broker URL.

    A URL that is not a well-formed ``scheme://user:password@host/...``
    (``redis:/:pw@host``, ``pw@host``, ``redis://:pw@[bad``, a password
    with an unescaped ``/`` or ``?``) has everything between its ``://``
    (or first ``:``) and its last ``@`` masked instead: a malformed URL is
    shown in the error that refuses it, so its secret must not be."""
    parts = _well_formed(url)
    if parts is None:
        return _mask_loosely(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]  # the first occurrence is the authority (it holds an "@")
        url = url.replace(parts.netloc, f"{parts.username or ''}:{_MASK}@{host}", 1)
    return _mask_options(url)


def _well_formed(url: str) -> SplitResult | None:
    """``url`` split, when its user info cannot be misread: ``scheme://``
    with a host (or no authority at all, as ``sqlite:////path``, whose path
    may hold ``@``), a valid port, and no ``@`` in a path after a host."""
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port (maybe a password cut by a "/")
    except ValueError:
        return None
    if parts.netloc and (not parts.hostname or "@" in parts.path):
        return None
    return parts


def _mask_options(url: str) -> str:
    return _SECRET_OPTION.sub(r"\1" + _MASK, url)


def _mask_loosely(url: str) -> str:
    before, at, after = url.rpartition("@")
    if at:  # everything that may be user info
        sep = "://" if "://" in before else ":"
        scheme, found, _ = before.partition(sep)
        return (scheme + sep if found and "/" not in scheme else "") + f"{_MASK}@" + _mask_options(after)
    match = _AUTHORITY.match(url)  # no "@": a bad "port" may be a password ("redis://:pw")
    if match and ":" in match[2]:
        return match[1] + match[2].partition(":")[0] + f":{_MASK}" + _mask_options(match[3])
    return _mask_options(url)


def django_alias(url: str, kind: str) -> str:
    """The Django alias a ``django-cache://alias`` or ``django-db://alias``
    URL names (``default`` when none). User info is refused: the project's
    settings hold the credentials, and an alias holding them would be shown
    in every message that names it."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        raise InvalidStorageURL(f"{kind} storage {mask_url(url)!r}: not a valid URL ({kind}://<alias>)") from None
    if "@" in netloc:
        raise InvalidStorageURL(
            f"{kind} storage {mask_url(url)!r}: a Django alias takes no user or password (the project's "
            f"settings hold them): write {kind}://<alias>"
        )
    return netloc or "default"


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
