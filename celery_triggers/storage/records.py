"""How an instance is stored: a compact JSON record, the same on every backend.

The record leaves out what its key already says (task and number come from
the instance name ``task#number``), omits empty fields, stores timestamps as
integer milliseconds (``created_at`` absolute, the others relative to it) and
gives the metadata every instance carries one-letter keys::

    {"I":"4CgicyVLRYqj4J7mGaoy2w","c":1795854188155,"d":0,"k":{"go":{}},"s":"scheduled"}

Where the session's state is at hand (Redis, the Django cache), the
creation time is stored relative to the session's start (``C``, in ms; the
state's ``base``), a few digits instead of thirteen.

A task id (``task_id``) that is a UUID in its canonical form, as every id
celery-triggers makes, is stored as its 16 bytes in unpadded URL-safe
base64 under ``I`` (22 characters instead of 36); any other id as it is,
under ``i``. When both are present an ``I`` that is a string wins (the Redis
start script appends ``"I":null`` before an ``i`` it writes).

``s`` (the status) sorts last and is always present, so a record always ends
with ``"s":"<status>"}``: the Redis start script relies on that to append the
start's fields without re-encoding the record (a repeated key is read as its
last occurrence). It matches the two statuses it acts on, ``scheduled`` and
``running``, by name; the others are stored as one letter
(:data:`STATUS_CODES`).

Formats (:data:`FORMAT` is the one written; a session says which one wrote
it, see ``docs/storage.md``): 0, celery-triggers 0.1.0's records (``"task"``,
``"number"``, ... keys); 1, these compact records with task ids as written
(``i`` only), statuses by name; 2, task ids compacted (``I``), statuses
as :data:`STATUS_CODES` says, and on Redis the records grouped and the
waiting index as lists (``redis/layout.py``). Every format is read.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ..core.data import dumps, loads
from ..core.errors import CorruptSession
from ..core.state import Instance, Status, split_instance_name

__all__ = [
    "FORMAT",
    "STATUS_CODES",
    "check_format",
    "compact_uuid",
    "decode_instance",
    "encode_instance",
    "encode_metadata_fragment",
    "expand_uuid",
    "to_ms",
]

#: The storage format this release writes (every earlier one is read).
FORMAT = 2

#: The statuses stored as one letter (the others by name, see above).
STATUS_CODES: dict[Status, str] = {
    Status.UNSTARTED: "u",
    Status.FINISHED: "f",
    Status.FAILED: "x",
    Status.ABANDONED: "a",
    Status.REPLAYED: "r",
    Status.SKIPPED: "k",
}
_STATUS_OF = {code: status.value for status, code in STATUS_CODES.items()}

#: Metadata keys with a one-letter field; timestamps are marked True.
_FIELDS: dict[str, tuple[str, bool]] = {
    "created_at": ("c", True),
    "scheduled_at": ("d", True),
    "started_at": ("b", True),
    "finished_at": ("e", True),
    "failed_at": ("g", True),
    "task_id": ("i", False),
    "attempts": ("n", False),
    "hostname": ("h", False),
    "celery_retries": ("y", False),
    "parent": ("p", False),
    "tokens": ("o", False),
    "lease": ("l", False),
}
_LONG = {short: (key, stamp) for key, (short, stamp) in _FIELDS.items()}
# The other fields: a (awaiting), f (unless fired), k (kwargs), m (other
# metadata), r (result), s (status): "s" sorts after every field.


def check_format(uid: str, stored: Any) -> None:
    """Refuse a session a newer release stored (its format is one this
    release does not know); a session with no format is of an earlier one."""
    if stored is None or (isinstance(stored, int) and not isinstance(stored, bool) and 0 <= stored <= FORMAT):
        return
    raise CorruptSession(
        f"session {uid!r} is stored in format {stored!r}, which this release of celery-triggers does not read "
        f"(it reads formats up to {FORMAT}): upgrade every process that uses this storage"
    )


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def compact_uuid(value: Any) -> str | None:
    """A canonical UUID string (lowercase, hyphenated) as 22 characters of
    unpadded URL-safe base64; None for anything else (kept as it is)."""
    if not isinstance(value, str) or len(value) != 36 or _UUID.fullmatch(value) is None:
        return None
    return base64.urlsafe_b64encode(bytes.fromhex(value.replace("-", ""))).decode()[:22]


def expand_uuid(text: str) -> str:
    """The canonical UUID string :func:`compact_uuid` made ``text`` from
    (``ValueError`` if it is not such a text)."""
    raw = base64.urlsafe_b64decode(text + "==") if isinstance(text, str) and len(text) == 22 else b""
    if len(raw) != 16:
        raise ValueError(f"{text!r} is not a compact task id")
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(key: str, value: Any, created_ms: int | None) -> tuple[str, Any] | None:
    """The compact field for a metadata item, or None to keep it verbatim."""
    spec = _FIELDS.get(key)
    if spec is None:
        return None
    short, stamp = spec
    if not stamp:
        return short, value
    if not _is_number(value):
        return None
    ms = to_ms(value)
    if short == "c":
        return short, ms
    return short, ms - created_ms if created_ms is not None else ms


def encode_metadata_fragment(metadata: dict[str, Any]) -> str | None:
    """Plain (not timestamp) metadata as ``,"h":"w1","y":0`` fields, or None
    if some key has no such short field (the caller then rewrites the whole
    record)."""
    parts = []
    for key, value in sorted(metadata.items()):
        spec = _FIELDS.get(key)
        if spec is None or spec[1] or key == "task_id":  # a task id may be stored as "I"
            return None
        parts.append(f",{dumps(spec[0])}:{dumps(value)}")
    return "".join(parts)


def encode_instance(instance: Instance, base: int | None = None) -> str:
    """The stored record of ``instance`` (raises ``TypeError``/``ValueError``
    on a value that is not JSON). With ``base`` (a time in integer ms: its
    session's start), ``created_at`` is stored relative to it, as ``C``;
    the record is then read with the same ``base``."""
    meta = instance.metadata
    created: Any = meta.get("created_at")
    created_ms = to_ms(created) if _is_number(created) else None
    record: dict[str, Any] = {"s": STATUS_CODES.get(instance.status, instance.status.value)}
    rest: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "task_id":
            compact = compact_uuid(value)
            if compact is not None:
                record["I"] = compact
                continue
        field = _short(key, value, created_ms)
        if field is None:
            rest[key] = value
        else:
            record[field[0]] = field[1]
    if rest:
        record["m"] = rest
    if instance.kwargs:
        record["k"] = instance.kwargs
    if instance.result is not None:
        record["r"] = instance.result
    if instance.awaiting:
        record["a"] = instance.awaiting
    if instance.unless_fired:
        record["f"] = instance.unless_fired
    if base is not None and "c" in record:
        record["C"] = record.pop("c") - base
    return dumps(record)


def decode_instance(uid: str, name: str, raw: str | bytes | dict[str, Any], base: int | None = None) -> Instance:
    """An instance from its stored record (``base``: as it was encoded
    with), or a :class:`CorruptSession` naming the session and the
    instance."""
    try:
        data = raw if isinstance(raw, dict) else loads(raw)
        if not isinstance(data, dict):
            raise TypeError(f"a record must be a JSON object, not {type(data).__name__}")
        if "task" in data:  # the 0.1.0 layout
            return Instance.from_dict(data)
        task, number = split_instance_name(name)
        created = data.get("c")
        metadata: dict[str, Any] = dict(data.get("m") or {})
        if "C" in data:  # relative to the session's start
            if base is None or not _is_number(data["C"]):
                raise TypeError("its creation time is relative to a session start it was not read with")
            created = data["C"] + base
            metadata["created_at"] = created / 1000
        for short, value in data.items():
            spec = _LONG.get(short)
            if spec is None:
                continue
            key, stamp = spec
            if stamp:
                ms = value + created if short != "c" and created is not None else value
                metadata[key] = ms / 1000
            else:
                metadata[key] = value
        compact = data.get("I")
        if isinstance(compact, str):  # wins over an "i" (see the module's docstring)
            metadata["task_id"] = expand_uuid(compact)
        elif compact is not None:
            raise TypeError(f"a compact task id must be a string, not {type(compact).__name__}")
        return Instance(
            task,
            number,
            Status(_STATUS_OF.get(data["s"]) or data["s"]),
            data.get("k") or {},
            data.get("r"),
            metadata,
            list(data.get("f") or ()),
            list(data.get("a") or ()),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSession(f"session {uid!r}: stored instance {name!r} is malformed ({exc})") from None
