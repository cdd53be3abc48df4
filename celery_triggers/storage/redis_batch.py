"""Transactions of many sessions sharing round trips on Redis
(:meth:`RedisStorage.run_many`, :meth:`RedisStorage.arun_many`).

The same optimistic transaction as :meth:`RedisStorage.transaction`, split
where it does I/O, so that the transactions of many sessions advance
together: each round runs every pending operation on what is known of its
session (the pure engine, no I/O), then sends every read and commit that
round needs in one pipeline, and the replies decide the next round. An
operation that needs a record nobody knows yet stops (``_NeedRead``) and is
re-run after the round's read. Same checks as one transaction at a time:
every commit is the version compare-and-set script, and a refused commit
returns the fresh records its re-run starts from.

The rounds are a generator that yields the script calls of a round and
receives their replies (no I/O of its own), driven by a blocking pipeline
(:func:`run_many`) or a ``redis.asyncio`` one (:func:`arun_many`). A
transaction still pending after a few rounds (a hot session many writers
fight over) runs on its own with the usual retry loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.cluster
import redis.exceptions

from ..errors import TriggersError
from .base import Job, StorageBackend, check_uid
from .kv import KVTxn
from .redis_known import Cached, begin
from .redis_scripts import key_prefix

if TYPE_CHECKING:
    from .redis import RedisStorage

__all__ = ["arun_many", "run_many"]

#: Rounds of reads and commits before a pending transaction runs alone.
ROUNDS = 4
#: Script calls per pipeline.
CHUNK = 500

#: A script call: (script SHA, keys, args).
Call = tuple[str, list[str], list[Any]]


class _NeedRead(Exception):
    """The operation needs records this process does not know."""

    def __init__(self, names: list[str], pairs: list[tuple[str, str]]):
        super().__init__()
        self.names, self.pairs = names, pairs


@dataclass
class _Pending:
    number: int
    uid: str
    job: Job
    cached: Cached
    #: ``cached`` comes from a read made for this transaction: what it
    #: concludes (nothing to write, an error) holds, no re-run needed.
    fresh: bool = False
    names: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class _Commit:
    pending: _Pending
    args: list[Any]
    txn: KVTxn
    version: int
    sha: str
    #: The state's text after the commit (the new one, or the unchanged one).
    state_text: str | bytes
    known: dict[str, Any]
    waiting: dict[tuple[str, str], list[str]]
    complete: bool
    result: Any


def _attempt(storage: RedisStorage, item: _Pending) -> tuple[str, Any]:
    """Run the operation on what is known: ("done", result), ("read",
    None) to read what it used (``item.names``/``pairs``) then re-run, or
    ("commit", _Commit)."""
    uid, operation, prefetch = item.job
    version, sha, state, known, waiting, complete = begin(item.cached)
    item.names.update(p for p in prefetch if isinstance(p, str))
    item.pairs.update(p for p in prefetch if isinstance(p, tuple))

    def fetch(wanted: list[str]) -> dict[str, Any]:
        missing = [n for n in wanted if n not in known]
        item.names.update(wanted)
        if missing:
            raise _NeedRead(missing, [])
        return {n: known[n] for n in wanted}

    def fetch_waiting(wanted: list[tuple[str, str]]) -> dict[str, Any]:
        missing = [p for p in wanted if p not in waiting and not complete]
        item.pairs.update(wanted)
        if missing:
            raise _NeedRead([], missing)
        return {n: known[n] for p in wanted for n in waiting.get(p, [])}

    txn = KVTxn(uid, state, fetch, fetch_waiting)
    try:
        result = operation(txn)
    except _NeedRead:
        return "read", None
    except Exception as exc:
        if not item.fresh:
            return "read", None  # perhaps only because what was known is stale
        if isinstance(exc, TriggersError):
            return "done", exc
        raise
    if not txn.changed:
        return ("done", result) if item.fresh else ("read", None)
    args, new_state_text = storage._commit_args(txn, version, sha, item.names, item.pairs)
    state_text = new_state_text or item.cached.state_text or ""
    return "commit", _Commit(item, args, txn, version, sha, state_text, known, waiting, complete, result)


def _rounds(storage: RedisStorage, jobs: Sequence[Job]) -> Generator[list[Call], list[Any], list[Any]]:
    """The transactions of ``jobs``; yields each round's script calls and
    receives their replies (a reply may be an exception). Returns one
    outcome per job: its result, a :class:`TriggersError`, or ``_LEFT`` for
    one to run alone."""
    outcomes: list[Any] = [_LEFT] * len(jobs)
    pending: list[_Pending] = []
    seen: set[str] = set()
    for number, job in enumerate(jobs):
        try:
            uid = check_uid(job[0])
        except TriggersError as exc:
            outcomes[number] = exc
            continue
        if uid in seen:  # a second transaction on one session: after the first, alone
            continue
        seen.add(uid)
        pending.append(_Pending(number, uid, job, storage._recent.recall(uid)))
    for _ in range(ROUNDS):
        if not pending:
            break
        reads: list[_Pending] = []
        commits: list[_Commit] = []
        for item in pending:
            try:
                kind, value = _attempt(storage, item)
            except Exception as exc:  # a bug or a value that is not JSON: this job only (see run_many)
                outcomes[item.number] = exc
                continue
            if kind == "done":
                outcomes[item.number] = value
            elif kind == "read":
                reads.append(item)
            else:
                commits.append(value)
        calls: list[Call] = []
        read_orders: list[tuple[list[str], list[tuple[str, str]]]] = []
        for item in reads:
            names, pairs = sorted(item.names), sorted(item.pairs)
            read_orders.append((names, pairs))
            calls.append((storage._read.sha, list(storage._keys(item.uid)), [len(names), *names, *_prefixes(pairs)]))
        for commit in commits:
            calls.append((storage._commit.sha, list(storage._keys(commit.pending.uid)), commit.args))
        replies = (yield calls) if calls else []
        pending = []
        for item, (names, pairs), reply in zip(reads, read_orders, replies[: len(reads)], strict=True):
            if isinstance(reply, _Alone):
                continue  # left to run alone
            if isinstance(reply, Exception):
                outcomes[item.number] = _error(storage, item.uid, reply)
                continue
            try:  # a corrupt state fails its session's job only
                fresh = storage._fresh(item.uid, *storage._parse_read(reply, names, pairs))
            except TriggersError as exc:
                outcomes[item.number] = _error(storage, item.uid, exc)
                continue
            item.cached, item.fresh = _merge(fresh, item.cached), True
            pending.append(item)
        for commit, reply in zip(commits, replies[len(reads) :], strict=True):
            item = commit.pending
            if isinstance(reply, _Alone):
                storage._recent.remember(item.uid, None)  # left to run alone, from a fresh read
            elif isinstance(reply, Exception):
                outcomes[item.number] = _error(storage, item.uid, reply)
            elif int(reply[0]):
                storage._committed(
                    commit.txn, commit.version, commit.sha, commit.state_text, commit.known, commit.waiting,
                    commit.complete,
                )  # fmt: skip
                outcomes[item.number] = commit.result
            else:  # another writer committed first: re-run from the fresh records in the reply
                try:
                    item.cached, item.fresh = storage._refused(item.uid, reply, item.names, item.pairs), False
                except TriggersError as exc:
                    outcomes[item.number] = _error(storage, item.uid, exc)
                    continue
                pending.append(item)
    return outcomes


_LEFT = object()


def _prefixes(pairs: list[tuple[str, str]]) -> list[str]:
    return [key_prefix(t, x) for t, x in pairs]


def _merge(fresh: Cached, before: Cached) -> Cached:
    """A read at the version already known completes what was known."""
    if fresh.version != before.version or fresh.state_sha != before.state_sha or before.state_text is None:
        return fresh
    waiting = {**before.waiting, **fresh.waiting}
    return Cached(
        fresh.uid, fresh.version, fresh.state_text, {**before.records, **fresh.records}, waiting, before.complete,
        fresh.state_sha,
    )  # fmt: skip


def _error(storage: RedisStorage, uid: str, exc: Exception) -> TriggersError:
    storage._recent.remember(uid, None)
    if isinstance(exc, TriggersError):
        return exc
    return storage._error(uid, exc)


def _left(outcomes: list[Any]) -> list[int]:
    """The numbers of the jobs left to run alone."""
    return [n for n, outcome in enumerate(outcomes) if outcome is _LEFT]


def _pipelined(client: Any, calls: list[Call]) -> list[Any]:
    """One round's calls, in order: their replies (an error in its call's place)."""
    if isinstance(client, redis.cluster.RedisCluster):
        return _cluster_pipelined(client, calls)
    return _send(client, calls)


def _send(client: Any, calls: list[Call]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for sha, keys, args in calls[start : start + CHUNK]:
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies += pipe.execute(raise_on_error=False)
    return replies


def _cluster_pipelined(client: Any, calls: list[Call]) -> list[Any]:
    """One pipeline per primary, each to the node that holds its calls'
    slot (redis-py's cluster pipeline refuses EVALSHA). A call the node
    answers with an error (MOVED while slots migrate, a node down) is
    retried alone by the caller, through the cluster client, which follows
    redirections."""
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for number, (_, keys, _) in enumerate(calls):
        node = client.get_node_from_key(keys[0])
        by_node.setdefault(node.name, (node, []))[1].append(number)
    replies: list[Any] = [None] * len(calls)
    for node, numbers in by_node.values():
        try:
            part = _send(node.redis_connection, [calls[n] for n in numbers])
        except redis.RedisError as exc:
            part = [exc] * len(numbers)
        for number, reply in zip(numbers, part, strict=True):
            replies[number] = _Alone(reply) if isinstance(reply, Exception) else reply
    return replies


class _Alone(Exception):
    """A cluster node's error for one call: its job runs alone."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


async def _apipelined(client: Any, calls: list[Call]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for sha, keys, args in calls[start : start + CHUNK]:
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies += await pipe.execute(raise_on_error=False)
    return replies


def _load_scripts(storage: RedisStorage) -> None:
    """The server lost its scripts (a restart, SCRIPT FLUSH): load them again."""
    for script in (storage._read, storage._commit):
        storage.client.script_load(script.script)


def run_many(storage: RedisStorage, jobs: Sequence[Job]) -> list[Any]:
    rounds = _rounds(storage, jobs)
    try:
        calls = next(rounds)
        while True:
            try:
                replies = _pipelined(storage.client, calls)
                if any(_no_script(r) for r in replies):
                    _load_scripts(storage)
                    replies = _pipelined(storage.client, calls)
            except Exception as exc:  # the connection failed: every call of the round fails
                replies = [exc] * len(calls)
            calls = rounds.send(replies)
    except StopIteration as done:
        outcomes = list(done.value)
    left = _left(outcomes)
    for number, outcome in zip(left, StorageBackend.run_many(storage, [jobs[n] for n in left]), strict=True):
        outcomes[number] = outcome
    return outcomes


async def arun_many(storage: RedisStorage, jobs: Sequence[Job]) -> list[Any]:
    client = await async_client(storage)

    rounds = _rounds(storage, jobs)
    try:
        calls = next(rounds)
        while True:
            try:
                replies = await _apipelined(client, calls)
                if any(_no_script(r) for r in replies):
                    for script in (storage._read, storage._commit):
                        await client.script_load(script.script)
                    replies = await _apipelined(client, calls)
            except Exception as exc:  # the connection failed: every call of the round fails
                replies = [exc] * len(calls)
            calls = rounds.send(replies)
    except StopIteration as done:
        outcomes = list(done.value)
    left = _left(outcomes)
    if left:
        alone = await asyncio.to_thread(StorageBackend.run_many, storage, [jobs[n] for n in left])
        for number, outcome in zip(left, alone, strict=True):
            outcomes[number] = outcome
    return outcomes


async def async_client(storage: RedisStorage) -> Any:
    """A ``redis.asyncio`` client on the storage's server, one per event
    loop, closed when the loop shuts down (``asyncio.run`` finalises
    asynchronous generators then: see ``_closed_at_loop_shutdown``)."""
    import redis.asyncio

    assert storage._async_from is not None
    loop = asyncio.get_running_loop()
    entry = storage._async_clients.get(loop)
    if entry is None:
        url, options = storage._async_from
        client = redis.asyncio.Redis.from_url(url, **options)
        closer = _closed_at_loop_shutdown(client)
        await closer.__anext__()
        entry = storage._async_clients[loop] = (client, closer)
    return entry[0]


async def _closed_at_loop_shutdown(client: Any) -> AsyncIterator[None]:
    """Started once and left suspended: the event loop's shutdown
    (``loop.shutdown_asyncgens()``, which ``asyncio.run`` calls) closes it,
    and its ``finally`` closes ``client``'s connections on that loop."""
    try:
        yield
    finally:
        close = getattr(client, "aclose", None) or client.close  # aclose: redis-py >= 5.0.1
        await close()
        await client.connection_pool.disconnect()  # redis-py < 5 leaves the pool's connections open


def _no_script(reply: Any) -> bool:
    if isinstance(reply, _Alone):
        reply = reply.error
    return isinstance(reply, redis.exceptions.NoScriptError)
