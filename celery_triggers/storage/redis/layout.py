"""The Redis layout of a session's records and waiting index, as Python
reads it (the scripts of :mod:`.scripts` write it).

Format 2 (see ``records``): the ``inst`` hash holds the instance records in
groups of :data:`GROUP` instances of one task, each group a field named
after its first instance (``t_x#0``, ``t_x#16``, ...) whose value is the
group's records in number order, each after an RS (the ASCII record
separator, which JSON text never holds raw, as in JSON text sequences): an
empty one for a number that has no record there, a lone US (unit
separator) for a record longer than :data:`ALONE` bytes, kept in a field of
its own (``<name>~``), since a write rewrites its whole group. A group pays
one hash field's overhead in Redis where records in fields of their own
pay one each.

The ``waiting`` hash lists, per (task, trigger) pair, the numbers of the
task's unstarted instances that await the trigger, in chunks of
:data:`LIST` numbers (so adding one rewrites a short text, however many
wait): the pair's field (:func:`list_field`) names its chunks
(``,0,3,``), and chunk ``c``'s field, ``<pair field>#<c>``, lists its
numbers (``,3,17,``).

The earlier layout (format 1) is read too: a record in a field named after
its instance (it wins over a group's entry, so a record put there by hand
is the one read) and the ``wait`` sorted set, whose members are ``<task
JSON> NUL <trigger JSON> NUL <instance>``. A write moves what it rewrites to
format 2, so a session moves over as it is used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from ...core.data import dumps
from ...core.errors import CorruptSession
from ...core.state import Instance, split_instance_name
from ..kv import parse_state, session_instances

__all__ = [
    "ALONE",
    "GROUP",
    "LIST",
    "flat_records",
    "from_dump",
    "key_prefix",
    "list_field",
    "named_records",
    "pair_args",
    "text",
]

#: Instances of one task per group of records.
GROUP = 16
#: Records longer than this (bytes) are kept alone, not in their group.
ALONE = 512
#: Instance numbers per chunk of a waiting list.
LIST = 128


def key_prefix(task: str, trigger: str) -> str:
    """Members of the earlier layout's ``wait`` sorted set are ``<task
    JSON> NUL <trigger JSON> NUL <instance>`` (JSON strings hold no raw NUL,
    so a prefix is unambiguous)."""
    return f"{dumps(task)}\x00{dumps(trigger)}\x00"


@lru_cache(maxsize=1024)
def list_field(task: str, trigger: str) -> str:
    """The ``waiting`` hash's field for a (task, trigger) pair: the pair as
    ASCII JSON, the same bytes whichever JSON library wrote it."""
    return json.dumps([task, trigger], separators=(",", ":"))


def pair_args(pairs: list[tuple[str, str]]) -> list[str]:
    """The scripts' arguments naming ``pairs``: per pair, its ``waiting``
    field, its ``wait`` prefix (the earlier layout) and its task."""
    args: list[str] = []
    for task, trigger in pairs:
        args += [list_field(task, trigger), key_prefix(task, trigger), task]
    return args


def flat_records(uid: str, flat: list[Any]) -> dict[str, Any]:
    """Every instance record of a session, by name, from its ``inst`` hash
    as ``HGETALL`` returns it (a flat list of fields and values)."""
    fields = {text(k): (v.encode() if isinstance(v, str) else v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
    grouped: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for field, value in fields.items():
        if field.endswith("~"):
            continue  # a record kept alone: read through its group's entry
        if not value.startswith(b"\x1e"):
            own[field] = value  # the earlier layout (or a record put there by hand): it wins
            continue
        try:
            task, first = split_instance_name(field)
        except ValueError:
            raise CorruptSession(f"session {uid!r}: stored record group {field!r} is malformed") from None
        for rel, record in enumerate(value.split(b"\x1e")[1:]):
            name = f"{task}#{first + rel}"
            if record == b"\x1f":
                grouped[name] = fields.get(f"{name}~")
            elif record:
                grouped[name] = record
    return {**grouped, **own}


def named_records(names: list[str], get: Callable[[list[str]], Sequence[Any]]) -> list[Any]:
    """The records of ``names`` (``None`` for a missing one) from the
    ``inst`` hash, through ``get`` (fields -> values, as ``HMGET``): a
    record in a field of its own wins, as in :func:`flat_records`, else its
    group's entry (one kept alone is read from its ``~`` field)."""
    fields: dict[str, None] = {}
    for name in names:
        task, number = split_instance_name(name)
        fields.update({name: None, f"{task}#{number - number % GROUP}": None, f"{name}~": None})
    asked = list(fields)
    values = {f: (v.encode() if isinstance(v, str) else v) for f, v in zip(asked, get(asked), strict=True)}
    found: list[Any] = []
    for name in names:
        own = values[name]
        if own is not None and not own.startswith(b"\x1e"):
            found.append(own)
            continue
        task, number = split_instance_name(name)
        group = values[f"{task}#{number - number % GROUP}"]
        entries = group.split(b"\x1e")[1:] if group is not None and group.startswith(b"\x1e") else []
        entry = entries[number % GROUP] if number % GROUP < len(entries) else b""
        found.append(values[f"{name}~"] if entry == b"\x1f" else entry or None)
    return found


def from_dump(uid: str, state_text: Any, flat: list[Any]) -> dict[str, Instance]:
    """A session's instances from the DUMP script's reply (state, flat hash)."""
    state = parse_state(uid, state_text)
    if state is None:
        return {}
    return session_instances(uid, flat_records(uid, flat), state)


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
