"""How an instance is stored: a compact JSON record, the same on every backend.

The record leaves out what its key already says (task and number come from
the instance name ``task#number``), omits empty fields, stores timestamps as
integer milliseconds (``created_at`` absolute, the others relative to it) and
gives the metadata every instance carries one-letter keys::

    {"c":1795854188155,"d":0,"i":"<celery task id>","k":{"go":{}},"s":"scheduled"}

``s`` (the status) sorts last and is always present, so a record always ends
with ``"s":"<status>"}``: the Redis start script relies on that to append the
start's fields without re-encoding the record (a repeated key is read as its
last occurrence). Records written by celery-triggers 0.1.0 (``"task"``,
``"number"``, ... keys) are still read.
"""

from __future__ import annotations

from typing import Any

from ..core.data import dumps, loads
from ..core.errors import CorruptSession
from ..core.state import Instance, Status, split_instance_name

__all__ = ["decode_instance", "encode_instance", "encode_metadata_fragment", "to_ms"]

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


def to_ms(seconds: float) -> int:
    return round(seconds * 1000)


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
        if spec is None or spec[1]:
            return None
        parts.append(f",{dumps(spec[0])}:{dumps(value)}")
    return "".join(parts)


def encode_instance(instance: Instance) -> str:
    """The stored record of ``instance`` (raises ``TypeError``/``ValueError``
    on a value that is not JSON)."""
    meta = instance.metadata
    created: Any = meta.get("created_at")
    created_ms = to_ms(created) if _is_number(created) else None
    record: dict[str, Any] = {"s": instance.status.value}
    rest: dict[str, Any] = {}
    for key, value in meta.items():
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
    return dumps(record)


def decode_instance(uid: str, name: str, raw: str | bytes | dict[str, Any]) -> Instance:
    """An instance from its stored record, or a :class:`CorruptSession`
    naming the session and the instance."""
    try:
        data = raw if isinstance(raw, dict) else loads(raw)
        if not isinstance(data, dict):
            raise TypeError(f"a record must be a JSON object, not {type(data).__name__}")
        if "task" in data:  # the 0.1.0 layout
            return Instance.from_dict(data)
        task, number = split_instance_name(name)
        created = data.get("c")
        metadata: dict[str, Any] = dict(data.get("m") or {})
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
        return Instance(
            task,
            number,
            Status(data["s"]),
            data.get("k") or {},
            data.get("r"),
            metadata,
            list(data.get("f") or ()),
            list(data.get("a") or ()),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSession(f"session {uid!r}: stored instance {name!r} is malformed ({exc})") from None
