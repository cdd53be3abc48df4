"""The Lua scripts of the Redis storage as the client calls them (their
source is :mod:`.lua`), and how their replies read."""

from __future__ import annotations

from collections.abc import Callable
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
    "call_one",
    "packer",
    "packs",
    "parse_read",
    "send_packed",
]


#: hiredis's command packer, where installed (the ``redis`` extra installs it).
packer: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as packer
except ImportError:  # pragma: no cover - the redis extra installs hiredis
    packer = None

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


def packs(client: Any) -> bool:
    """Calls on ``client`` go through :func:`send_packed`: hiredis is
    installed and the client is a plain ``redis.Redis`` (a cluster's client,
    which a Django cache may hand the storage, routes its calls itself)."""
    return packer is not None and isinstance(client, redis.Redis)


def send_packed(client: Any, calls: list[Call], chunk_size: int) -> list[Any]:
    """Script calls through one of ``client``'s connections, ``chunk_size``
    at a time: each packed by hiredis in one call, a chunk written at once,
    the replies read in order (an error reply in its call's place).
    redis-py would check and encode every argument in Python first: a fifth
    of a batch of one-event sessions, 15-30 us of a lone call. A connection
    that fails is dropped and the error raised; nothing is re-sent, since a
    commit whose reply was lost may have gone through."""
    assert packer is not None
    pool = client.connection_pool
    try:
        connection = pool.get_connection()  # redis-py >= 5.3
    except TypeError:
        connection = pool.get_connection("EVALSHA")  # earlier releases need a command name
    replies: list[Any] = []
    try:
        for start in range(0, len(calls), chunk_size):
            chunk = calls[start : start + chunk_size]
            packed = b"".join(packer(("EVALSHA", sha, len(keys), *keys, *args)) for sha, keys, args in chunk)
            connection.send_packed_command([packed])  # one write (a list of commands is a write each)
            for _ in chunk:
                try:
                    replies.append(connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
    except BaseException:
        connection.disconnect()  # replies may be left on the socket
        raise
    finally:
        pool.release(connection)
    return replies


def call_one(client: Any, call: Call) -> Any:
    """One script call on ``client``, as :func:`send_packed` sends many
    where it :func:`packs`, else as redis-py sends it; an error reply is
    raised."""
    if not packs(client):
        sha, keys, args = call
        return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
    reply = send_packed(client, [call], 1)[0]
    if isinstance(reply, Exception):
        raise reply
    return reply
