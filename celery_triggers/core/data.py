"""JSON helpers: every value stored or sent by celery-triggers is JSON."""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .errors import InvalidKwargs

orjson: Any
try:  # optional (the ``fast`` extra): the same JSON, encoded and decoded in C
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_LENGTH",
    "MAX_KWARGS_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_UID_LENGTH",
    "check_json",
    "check_text",
    "display_json",
    "dumps",
    "escape_text",
    "frozen",
    "loads",
    "normalize_kwargs",
    "plain",
    "shown",
]

#: Longest trigger or task name, and session UID, in characters.
MAX_NAME_LENGTH = 256
MAX_UID_LENGTH = 1024
#: Longest idempotency key of a fire (``fire(..., key=...)``), in characters.
MAX_KEY_LENGTH = 256
#: Deepest nesting of kwargs (a mapping or list in a mapping ... counts 1 each).
MAX_DEPTH = 100
#: Largest encoded kwargs (or result) by default; ``triggers_max_kwargs_bytes``.
MAX_KWARGS_BYTES = 1024 * 1024


#: A run of 19 digits: an integer orjson would decode as a float (beyond 64
#: bits), or a long mantissa; such texts are decoded by the json module.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")
#: Sorted keys; dates and dataclasses refused (handed to the json module), as it does.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS if orjson else 0
)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys; NaN and infinities are refused.

    With orjson installed, encoded by orjson, except what it encodes
    otherwise than the json module: integers beyond 64 bits (it refuses
    them) and NaN (it writes ``null``): any text holding ``null`` is
    re-encoded by the json module, which refuses NaN. Non-ASCII characters
    are then written as UTF-8 rather than escaped; both decode the same."""
    if orjson is not None:
        try:
            out: bytes = orjson.dumps(value, option=_ORJSON_OPTIONS)
        except TypeError:
            return _json_dumps(value)  # its error, or its encoding of what orjson refuses
        if b"null" not in out:
            return out.decode()
    return _json_dumps(value)


def loads(text: str | bytes) -> Any:
    """Decode JSON (orjson when installed, except texts with a 19-digit run,
    which orjson would decode to a float where the json module gives the
    exact integer)."""
    if orjson is not None:
        raw = text.encode() if isinstance(text, str) else text
        if not _LONG_NUMBER.search(raw):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass  # the json module's error, named as before (or NaN, which it reads)
    return json.loads(text)


def check_json(value: Any, *, what: str) -> None:
    """Raise ``TypeError`` naming ``what`` when ``value`` is not plain JSON."""
    try:
        _json_dumps(value)  # the json module's verdict, orjson or not
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serializable: {exc}") from None


def frozen(value: Any) -> Any:
    """A deeply read-only copy of JSON-shaped ``value``: every mapping a
    ``MappingProxyType`` of a new dict, every list or tuple a tuple; what
    a config holds, so nothing can change it and nothing is shared with the
    caller's data."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(item) for item in value)
    return value


def plain(value: Any) -> Any:
    """A fresh copy of JSON-shaped ``value`` made of plain ``dict`` and
    ``list`` at every depth (the inverse of :func:`frozen`): what a task
    body receives, free to change and to return."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


#: Characters that could forge or disguise output: control characters
#: (Unicode category Cc: newline, carriage return, escape, ...), line and
#: paragraph separators, bidirectional overrides and isolates, and lone
#: surrogates (which no terminal or file can encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")


def escape_text(text: str) -> str:
    """``text`` with every character that could forge a line or disguise
    output written as a Python escape (``\\n``, ``\\x1b``, ``\\u202e``);
    everything else as it is. For names and UIDs written to logs, tables
    and graphs (stored data may predate :func:`check_text`'s rules)."""
    return _UNSAFE.sub(_escaped, text)


def _brief_repr(value: Any) -> str:
    """A ``repr`` bounded however large ``value`` is."""
    brief = reprlib.Repr()  # keyword arguments only from Python 3.12
    brief.maxlevel, brief.maxlist, brief.maxdict, brief.maxstring, brief.maxother = 3, 8, 8, 60, 60
    return brief.repr(value)


def shown(value: Any, limit: int = 80) -> str:
    """``value`` for a log line or an error message: a string escaped
    (:func:`escape_text`), anything else as a bounded ``repr``; at most
    ``limit`` characters, then how long a longer string was."""
    if not isinstance(value, str):
        return escape_text(_brief_repr(value))[:limit]
    text = escape_text(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value)} characters)"


def check_text(value: Any, *, what: str, limit: int, stored: bool = False) -> str | None:
    """Why ``value`` is not a usable name or UID (None if it is): a
    non-empty string, not only whitespace, at most ``limit`` characters,
    and nothing that could forge or disguise a line of output: no control
    character (newline, carriage return, escape: Unicode category Cc), line
    separator or bidirectional override, and no lone surrogate (not valid
    Unicode). The reason shows the value escaped and truncated.

    ``stored``: a value already in storage, perhaps from before the rule on
    control characters: those are accepted (so it can still be read,
    recovered and deleted; output escapes them)."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, got {_brief_repr(value)}"
    if not value.strip():
        return f"{what} must not be only whitespace, got {shown(repr(value), 60)}"
    if len(value) > limit:
        return f"{what} is {len(value)} characters long, more than {limit} (starts {value[:40]!r})"
    unsafe = _UNSAFE.search(value)
    if unsafe is not None and stored and not "\ud800" <= unsafe.group() <= "\udfff":
        unsafe = _SURROGATE.search(value)
    if unsafe is None:
        return None
    if "\ud800" <= unsafe.group() <= "\udfff":
        return f"{what} holds a lone surrogate, which is not valid Unicode: {shown(repr(value), 120)}"
    return f"{what} holds a control character ({_escaped(unsafe)}): {shown(repr(value), 120)}"


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_shape(value: Any, what: str) -> None:
    """Depth and keys, checked without recursion (deep input must not raise
    ``RecursionError``); keys are never silently converted to strings."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, Mapping):
            children = []
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidKwargs(f"{what}: keys must be strings, got {key!r} at {path or 'the top'}")
                if not _valid_unicode(key):
                    raise InvalidKwargs(f"{what}: key {key!r} holds a lone surrogate, which is not valid Unicode")
                children.append((child, f"{path}.{key}" if path else key))
        elif isinstance(item, (list, tuple)):
            children = [(child, f"{path}[{i}]") for i, child in enumerate(item)]
        else:
            if isinstance(item, str) and not _valid_unicode(item):
                raise InvalidKwargs(f"{what}: a lone surrogate at {path or 'the top'} is not valid Unicode")
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidKwargs(
                    f"{what}: kwargs must be JSON-serializable: {item!r} is not a JSON number (at {path or 'the top'})"
                )
            if item is not None and not isinstance(item, (str, int, float)):  # as the json module says
                raise InvalidKwargs(
                    f"{what}: kwargs must be JSON-serializable: Object of type {type(item).__name__} "
                    f"is not JSON serializable (at {path or 'the top'})"
                )
            continue
        if children and depth >= MAX_DEPTH:
            raise InvalidKwargs(f"{what}: nested more than {MAX_DEPTH} levels deep (at {path or 'the top'})")
        stack.extend((child, depth + 1, child_path) for child, child_path in children)


def normalize_kwargs(
    kwargs: Mapping[str, Any] | None, *, what: str, max_bytes: int = MAX_KWARGS_BYTES
) -> dict[str, Any]:
    """Validate trigger kwargs and return a JSON round-tripped copy.

    Raises :class:`InvalidKwargs` naming ``what`` (e.g. the trigger) when the
    kwargs are not a mapping of string keys (at every depth) to JSON values,
    are nested deeper than :data:`MAX_DEPTH`, or encode to more than
    ``max_bytes``.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise InvalidKwargs(f"{what}: kwargs must be a mapping, got {type(kwargs).__name__}")
    _check_shape(kwargs, what)
    try:
        text = dumps(dict(kwargs))
    except (TypeError, ValueError) as exc:
        raise InvalidKwargs(f"{what}: kwargs must be JSON-serializable: {exc}") from None
    size = len(text)
    if not text.isascii() or "\x7f" in text or size > max_bytes * 0.9:  # as json writes it (escaping those)
        size = len(_json_dumps(dict(kwargs)))
    if size > max_bytes:
        raise InvalidKwargs(f"{what}: kwargs encode to {size} bytes, more than {max_bytes} (triggers_max_kwargs_bytes)")
    result: dict[str, Any] = loads(text)
    return result


def display_json(value: Any, indent: int | None = None) -> str:
    """``value`` as JSON for people (commands, the admin, messages): keys
    sorted, text as written (``"José"``, not ``"Jos\\u00e9"``)."""
    return json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False, default=str)
