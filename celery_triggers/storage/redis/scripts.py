"""The Lua scripts of the Redis storage as the client calls them (their
source is :mod:`.lua`), and how their replies read."""

from __future__ import annotations

from typing import Any

import redis

from .layout import text
from .lua import COMMIT, DUMP, PURGE, READ, START

__all__ = [
    "CLIENT_ERRORS",
    "COMMIT",
    "DUMP",
    "PURGE",
    "READ",
    "START",
    "Call",
    "Read",
    "Scripts",
    "parse_read",
]


#: Everything redis-py raises (its cluster client's own errors are not RedisErrors).
CLIENT_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)

#: A script call: (script SHA, keys, args).
Call = tuple[str, list[str], list[Any]]

#: What a read (or a refused commit's reply) says: version, state text,
#: records by instance name, and the waiting names per (task, trigger).
Read = tuple[Any, Any, dict[str, Any], dict[tuple[str, str], list[str]]]


def parse_read(raw: Any, names: list[str], pairs: list[tuple[str, str]]) -> Read:
    """The READ script's reply (``raw``) for ``names`` and ``pairs``."""
    version, state, records, waiting, waiting_records, counts = raw
    known = dict(zip(names, records, strict=True))
    waiting_names = [text(n) for n in waiting]
    known.update(zip(waiting_names, waiting_records, strict=True))
    by_pair: dict[tuple[str, str], list[str]] = {}
    start = 0
    for pair, count in zip(pairs, counts, strict=True):
        by_pair[pair] = waiting_names[start : start + int(count)]
        start += int(count)
    return version, state, known, by_pair


class Scripts:
    """The scripts registered on one client (redis-py ``Script`` objects:
    called with ``keys=`` and ``args=``, they load themselves after a
    ``NOSCRIPT``)."""

    def __init__(self, client: Any):
        self.commit = client.register_script(COMMIT)
        self.start = client.register_script(START)
        self.read = client.register_script(READ)
        self.dump = client.register_script(DUMP)
        self.purge = client.register_script(PURGE)
        self._by_sha = {s.sha: s for s in (self.commit, self.start, self.read, self.dump, self.purge)}

    def call(self, call: Call) -> Any:
        """Run one script call on the client the scripts were registered on."""
        sha, keys, args = call
        return self._by_sha[sha](keys=keys, args=args)

    def load(self, client: Any) -> None:
        """Load the scripts a transaction uses into ``client``'s server
        (after a restart or ``SCRIPT FLUSH``)."""
        for script in (self.read, self.commit):
            client.script_load(script.script)
