"""Storage URLs as people see them: passwords masked wherever a URL is
shown, and the Django alias a ``django-*://`` URL names."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from ..core.errors import InvalidStorageURL

__all__ = ["django_alias", "mask_url"]


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
