"""Transactions of many sessions sharing round trips on Redis
(``RedisStorage.run_many`` and ``arun_many``).

The transactions of :mod:`.transaction` advance together: each round runs
every pending operation on what is known of its session, then sends every
read and commit that round needs in one pipeline, and the replies decide
the next round. The rounds are driven here by a blocking pipeline
(:func:`run_many`) or a ``redis.asyncio`` one (:func:`arun_many`); on a
cluster, one pipeline per primary. A transaction still pending after a few
rounds (a hot session many writers fight over) runs on its own with the
lone transaction's retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any

import redis
import redis.cluster
import redis.exceptions

from ..base import Job
from .scripts import CLIENT_ERRORS, Call, packs, send_packed
from .transaction import LEFT, Alone, Store, pending, rounds, run_one

__all__ = ["CHUNK", "ROUNDS", "arun_many", "run_many", "send"]

#: Rounds of reads and commits before a pending transaction runs alone.
ROUNDS = 4
#: Script calls per pipeline.
CHUNK = 500


def _steps(store: Store, jobs: Sequence[Job]) -> tuple[list[Any], Generator[list[Call], list[Any], None]]:
    outcomes, items = pending(store, jobs)
    return outcomes, rounds(store, items, outcomes, ROUNDS)


def run_many(store: Store, jobs: Sequence[Job]) -> list[Any]:
    outcomes, steps = _steps(store, jobs)
    try:
        calls = next(steps)
        while True:
            try:
                replies = pipelined(store.client, calls)
                if any(_no_script(r) for r in replies):
                    store.scripts.load(store.client)
                    replies = pipelined(store.client, calls)
            except Exception as exc:  # the connection failed: every call of the round fails
                replies = [exc] * len(calls)
            calls = steps.send(replies)
    except StopIteration:
        pass
    return _alone(store, jobs, outcomes)


async def arun_many(store: Store, jobs: Sequence[Job]) -> list[Any]:
    client = await async_client(store)
    outcomes, steps = _steps(store, jobs)
    try:
        calls = next(steps)
        while True:
            try:
                replies = await apipelined(client, calls)
                if any(_no_script(r) for r in replies):
                    for script in (store.scripts.read, store.scripts.commit):
                        await client.script_load(script.script)
                    replies = await apipelined(client, calls)
            except Exception as exc:  # the connection failed: every call of the round fails
                replies = [exc] * len(calls)
            calls = steps.send(replies)
    except StopIteration:
        pass
    if any(outcome is LEFT for outcome in outcomes):
        return await asyncio.to_thread(_alone, store, jobs, outcomes)
    return outcomes


def _alone(store: Store, jobs: Sequence[Job], outcomes: list[Any]) -> list[Any]:
    """Run each job left after the rounds as a lone transaction."""
    for number, outcome in enumerate(outcomes):
        if outcome is LEFT:
            try:
                outcomes[number] = run_one(store, jobs[number], None)[0]
            except Exception as exc:  # a TriggersError, or a bug raised once the others are settled
                outcomes[number] = exc
    return outcomes


def pipelined(client: Any, calls: list[Call]) -> list[Any]:
    """One round's calls, in order: their replies (an error in its call's place)."""
    if isinstance(client, redis.cluster.RedisCluster):
        return _cluster_pipelined(client, calls)
    return send(client, calls)


def send(client: Any, calls: list[Call]) -> list[Any]:
    """``calls`` through ``client`` in pipelines of :data:`CHUNK`."""
    if packs(client):
        return send_packed(client, calls, CHUNK)
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
    answers with an error (MOVED while slots migrate, a node down) runs
    alone, through the cluster client, which follows redirections."""
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for number, (_, keys, _) in enumerate(calls):
        node = client.get_node_from_key(keys[0])
        by_node.setdefault(node.name, (node, []))[1].append(number)
    replies: list[Any] = [None] * len(calls)
    for node, numbers in by_node.values():
        try:
            part = send(node.redis_connection, [calls[n] for n in numbers])
        except CLIENT_ERRORS as exc:
            part = [exc] * len(numbers)
        for number, reply in zip(numbers, part, strict=True):
            replies[number] = Alone(reply) if isinstance(reply, Exception) else reply
    return replies


async def apipelined(client: Any, calls: list[Call]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            for sha, keys, args in calls[start : start + CHUNK]:
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies += await pipe.execute(raise_on_error=False)
    return replies


async def async_client(store: Store) -> Any:
    """A ``redis.asyncio`` client on the storage's server, one per event
    loop, closed when the loop shuts down (``asyncio.run`` finalises
    asynchronous generators then: see ``_closed_at_loop_shutdown``)."""
    import redis.asyncio

    assert store.async_from is not None
    loop = asyncio.get_running_loop()
    entry = store.async_clients.get(loop)
    if entry is None:
        url, options = store.async_from
        client = redis.asyncio.Redis.from_url(url, **options)
        closer = _closed_at_loop_shutdown(client)
        await closer.__anext__()
        entry = store.async_clients[loop] = (client, closer)
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
    if isinstance(reply, Alone):
        reply = reply.error
    return isinstance(reply, redis.exceptions.NoScriptError)
