"""JSON helpers: every value stored or sent by celery-triggers is JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import InvalidKwargs

__all__ = ["check_json", "dumps", "loads", "normalize_kwargs"]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def check_json(value: Any, *, what: str) -> None:
    """Raise ``TypeError`` naming ``what`` when ``value`` is not plain JSON."""
    try:
        dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from None


def normalize_kwargs(kwargs: Mapping[str, Any] | None, *, what: str) -> dict[str, Any]:
    """Validate trigger kwargs and return a JSON round-tripped copy.

    Raises :class:`InvalidKwargs` naming ``what`` (e.g. the trigger) when the
    kwargs are not a mapping of string keys to JSON-serializable values.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise InvalidKwargs(f"{what}: kwargs must be a mapping, got {type(kwargs).__name__}")
    for key in kwargs:
        if not isinstance(key, str):
            raise InvalidKwargs(f"{what}: kwargs keys must be strings, got {key!r}")
    try:
        result: dict[str, Any] = loads(dumps(dict(kwargs)))
    except (TypeError, ValueError) as exc:
        raise InvalidKwargs(f"{what}: kwargs must be JSON-serializable: {exc}") from None
    return result
