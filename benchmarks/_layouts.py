"""Stored layouts for the footprint benchmark, written from instances.

The footprint of a layout depends only on the bytes and the Redis
structures it stores, so the benchmark measures each storage lever by
writing the same instances (those the real code stored) in a layout with
that lever on or off:

* ``ids``: task ids that are UUIDs in 22 characters (``I``), else 36 (``i``);
* ``statuses``: resting statuses as one letter, else by name;
* ``created``: creation times relative to the session's start (``C``),
  else absolute (``c``);
* ``lists``: the waiting index as lists of numbers per (task, trigger) in
  a hash (in chunks, as :mod:`celery_triggers.storage.redis.layout` says),
  else a sorted set with one member per entry;
* ``groups``: records grouped ``GROUP`` to a hash field, else one field each.

With every lever off this is format 1, as celery-triggers wrote it before
(:func:`format1_record` is that release's encoder, kept here and only
here); with every lever on it is format 2, as this release writes it.
Two levers not taken can be measured too: ``hosts`` (the hostname stored
as a number into a per-session table of worker names) and ``awaiting``
(an unstarted instance's ``a`` list left out).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from celery_triggers.core.data import dumps, loads
from celery_triggers.core.state import Instance, Status, split_instance_name
from celery_triggers.storage.records import STATUS_CODES, encode_instance, expand_uuid, to_ms
from celery_triggers.storage.redis.layout import ALONE, GROUP, LIST, key_prefix, list_field

__all__ = ["FORMAT1", "FORMAT2", "Levers", "format1_record", "record", "write_layout"]


@dataclass(frozen=True)
class Levers:
    ids: bool = False
    statuses: bool = False
    created: bool = False
    lists: bool = False
    groups: bool = False
    hosts: bool = False
    awaiting: bool = True

    def label(self) -> str:
        on = [name for name in ("ids", "statuses", "created", "lists", "groups") if getattr(self, name)]
        extra = (["hostname table"] if self.hosts else []) + ([] if self.awaiting else ["no awaiting list"])
        return " + ".join(on + extra) or "none"


FORMAT1 = Levers()
FORMAT2 = Levers(ids=True, statuses=True, created=True, lists=True, groups=True)


# -- format 1's encoder (celery-triggers before format 2) ---------------------------

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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format1_record(instance: Instance) -> str:
    """The record format 1 stored for ``instance``."""
    meta = instance.metadata
    created: Any = meta.get("created_at")
    created_ms = to_ms(created) if _is_number(created) else None
    out: dict[str, Any] = {"s": instance.status.value}
    rest: dict[str, Any] = {}
    for key, value in meta.items():
        spec = _FIELDS.get(key)
        if spec is None or (spec[1] and not _is_number(value)):
            rest[key] = value
            continue
        short, stamp = spec
        if not stamp:
            out[short] = value
        else:
            ms = to_ms(value)
            out[short] = ms if short == "c" or created_ms is None else ms - created_ms
    if rest:
        out["m"] = rest
    if instance.kwargs:
        out["k"] = instance.kwargs
    if instance.result is not None:
        out["r"] = instance.result
    if instance.awaiting:
        out["a"] = instance.awaiting
    if instance.unless_fired:
        out["f"] = instance.unless_fired
    return dumps(out)


# -- a record with some levers ---------------------------------------------------


def record(instance: Instance, levers: Levers, base: int, hosts: dict[str, int]) -> str:
    """``instance``'s record with ``levers`` (format 2's encoder, each lever
    it has undone when off)."""
    if not levers.awaiting:
        instance = replace(instance, awaiting=[])
    data = loads(encode_instance(instance, base))
    if not levers.ids and "I" in data:
        data["i"] = expand_uuid(data.pop("I"))
    if not levers.statuses:
        data["s"] = Status(_long(data["s"])).value
    if not levers.created and "C" in data:
        data["c"] = data.pop("C") + base
    if levers.hosts and "h" in data:
        data["h"] = hosts.setdefault(data["h"], len(hosts))
    return dumps(data)


def _long(code: str) -> str:
    return {c: s.value for s, c in STATUS_CODES.items()}.get(code, code)


# -- a session in a layout ----------------------------------------------------------


def write_layout(
    client: Any, keys: list[str], state_text: str | bytes, instances: list[Instance], levers: Levers
) -> None:
    """Store ``instances`` under ``keys`` (state, records, version, sorted
    set, lists: as ``RedisStorage.keys``) in the layout ``levers`` say."""
    state: dict[str, Any] = loads(state_text)
    base = int(state.get("base") or to_ms(state["created_at"]))
    hosts: dict[str, int] = {}
    records = {i.name: record(i, levers, base, hosts) for i in instances}
    if levers == FORMAT1:
        assert all(records[i.name] == format1_record(i) for i in instances), "format 1 is all levers off"
    if levers.hosts:
        state["hosts"] = list(hosts)
    if not levers.created:
        state.pop("base", None)
    fields: dict[str, str] = {}
    if levers.groups:
        grouped: dict[str, dict[int, str]] = {}
        for name, text in records.items():
            task, number = split_instance_name(name)
            entry = text
            if len(text.encode()) > ALONE:
                fields[f"{name}~"], entry = text, "\x1f"
            grouped.setdefault(f"{task}#{number - number % GROUP}", {})[number % GROUP] = entry
        for field, entries in grouped.items():
            fields[field] = "".join("\x1e" + entries.get(rel, "") for rel in range(max(entries) + 1))
    else:
        fields = records
    pipe = client.pipeline(transaction=False)
    pipe.delete(*keys)
    pipe.set(keys[0], dumps(state))
    pipe.set(keys[2], 1)
    if fields:
        pipe.hset(keys[1], mapping=fields)
    waiting = [(i.task, t, i) for i in instances if i.status is Status.UNSTARTED for t in i.awaiting]
    if levers.lists:
        chunks: dict[str, dict[int, list[str]]] = {}
        for task, trigger, i in waiting:
            chunks.setdefault(list_field(task, trigger), {}).setdefault(i.number // LIST, []).append(str(i.number))
        lists: dict[str, str] = {}
        for field, numbers in chunks.items():
            lists[field] = "," + "".join(f"{c}," for c in numbers)
            lists.update({f"{field}#{c}": "," + ",".join(n) + "," for c, n in numbers.items()})
        if lists:
            pipe.hset(keys[4], mapping=lists)
    elif waiting:
        pipe.zadd(keys[3], {key_prefix(task, trigger) + i.name: 0 for task, trigger, i in waiting})
    pipe.execute()
