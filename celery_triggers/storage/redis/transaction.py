"""The optimistic transaction on Redis, written once.

A transaction starts from what this process knows of its session (its last
read or commit there, see :mod:`.known`), or from the guess that the session
is new; it runs the operation (the pure engine) on that, with no I/O, and
commits with the COMMIT script, which applies the writes only if the
session's version is still the one it started from. A refused commit
returns a fresh read of what the transaction used, and the operation re-runs
from it. An operation that needs a record this process does not know stops
(:class:`NeedRead`); its transaction reads everything it used so far, then
re-runs. An operation that started from what was known but writes nothing,
or raises, has no commit to check it: it is re-run on a fresh read.

:func:`rounds` advances any number of transactions (of different sessions)
together: each round runs every pending operation, then hands back the
script calls of the round (reads and commits) and receives their replies.
It does no I/O of its own, so one implementation serves every driver: a
lone transaction (:func:`run_one`, a call at a time), and the pipelined
rounds of many sessions, blocking or asyncio (:mod:`.batch`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...core.errors import Conflict, StorageError, TriggersError
from ...core.state import split_instance_name
from ..base import Job
from ..kv import KVTxn, parse_state
from ..txn import SessionTxn, check_uid
from .known import Cached, Recent, begin, state_sha
from .layout import key_prefix, list_field, pair_args, text
from .scripts import CLIENT_ERRORS, Call, Read, Scripts, parse_read

__all__ = ["LEFT", "Alone", "Pending", "Store", "commit_args", "fresh", "pending", "read_only", "rounds", "run_one"]
#: The outcome of a transaction left to run alone (a hot session's, or one
#: a cluster node could not take in a pipeline).
LEFT: Any = object()
#: Rounds a lone transaction runs before it backs off and reads afresh.
LONE_ROUNDS = 3


class Store(Protocol):
    """What a transaction needs of the Redis backend (``RedisStorage``)."""

    client: Any
    scripts: Scripts
    known: Recent
    max_retries: int
    async_from: tuple[str, dict[str, Any]] | None
    async_clients: Any

    def keys(self, uid: str) -> list[str]: ...

    def error(self, uid: str | None, exc: Exception) -> StorageError: ...

    def ttl_arg(self, state: dict[str, Any]) -> int: ...

    def call(self, call: Call) -> Any: ...


class NeedRead(Exception):
    """The operation needs records this process does not know."""


@dataclass
class Pending:
    """One transaction in progress."""

    number: int
    uid: str
    job: Job
    cached: Cached
    #: ``cached`` comes from a read made for this transaction: what it
    #: concludes (nothing to write, an error) holds, no re-run needed.
    fresh: bool = False
    #: Read before the first attempt (read-only operations, a backed-off re-run).
    must_read: bool = False
    names: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    #: What this process knows of the session after the transaction.
    after: Cached | None = None
    #: Idempotency keys the commit script found used (key -> what it stored).
    used_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        prefetch = self.job[2]
        self.names.update(p for p in prefetch if isinstance(p, str))
        self.pairs.update(p for p in prefetch if isinstance(p, tuple))


@dataclass
class _Commit:
    pending: Pending
    args: list[Any]
    txn: KVTxn
    version: int
    #: The state's text after the commit (the new one, or the unchanged one).
    state_text: str | bytes
    known: dict[str, Any]
    waiting: dict[tuple[str, str], list[str]]
    complete: bool
    result: Any


def _attempt(store: Store, item: Pending) -> tuple[str, Any]:
    """Run the operation on what is known: ("done", result), ("read",
    None) to read what it used (``item.names``/``pairs``) then re-run, or
    ("commit", _Commit)."""
    uid, operation, _ = item.job
    version, sha, state, known, waiting, complete = begin(item.cached)

    def fetch(wanted: list[str]) -> dict[str, Any]:
        item.names.update(wanted)
        if any(n not in known for n in wanted):
            raise NeedRead
        return {n: known[n] for n in wanted}

    def fetch_waiting(wanted: list[tuple[str, str]]) -> dict[str, Any]:
        item.pairs.update(wanted)
        if not complete and any(p not in waiting for p in wanted):
            raise NeedRead
        return {n: known[n] for p in wanted for n in waiting.get(p, [])}

    txn = KVTxn(uid, state, fetch, fetch_waiting, item.used_keys)
    try:
        result = operation(txn)
    except NeedRead:
        return "read", None
    except Exception as exc:
        if not item.fresh:
            return "read", None  # perhaps only because what was known is stale
        if isinstance(exc, TriggersError):
            return "done", exc
        raise
    if not txn.changed:
        if not item.fresh:
            return "read", None
        if not txn.is_new:
            item.after = item.cached
        return "done", result
    args, new_state_text = commit_args(store, txn, version, sha, item.names, item.pairs)
    state_text = new_state_text or item.cached.state_text or ""
    return "commit", _Commit(item, args, txn, version, state_text, known, waiting, complete, result)


def commit_args(
    store: Store, txn: KVTxn, version: int, sha: str, read_names: set[str], read_pairs: set[tuple[str, str]]
) -> tuple[list[Any], str]:
    """The COMMIT script's arguments for ``txn`` started at ``version``
    (what it read is re-read on a conflict), and the new state text
    ("": unchanged)."""
    new_state_text = txn.state_text() if (txn.state_dirty or txn.is_new) else ""
    names, pairs = sorted(read_names), sorted(read_pairs)
    args: list[Any] = [f"{version}:{sha}", store.ttl_arg(txn.state), new_state_text]
    args += [len(names), *names]
    args += [len(pairs), *pair_args(pairs)]
    args.append(len(txn.instance_writes))
    for name, record in txn.instance_writes.items():
        args += [name, record]
    # Per waiting list changed: the numbers added and removed.
    lists: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for entries, side in ((txn.index_adds, 0), (txn.index_removes, 1)):
        for task, trigger, name in sorted(entries):
            lists.setdefault((task, trigger), ([], []))[side].append(str(split_instance_name(name)[1]))
    args.append(len(lists))
    for (task, trigger), (adds, removes) in lists.items():
        args += [list_field(task, trigger), len(adds), *adds, len(removes), *removes]
    args += sorted(key_prefix(t, x) + n for t, x, n in txn.index_removes)  # the earlier layout's entries
    for key, value in txn.key_writes.items():  # idempotency keys, popped off the end by the script
        args += [key, value]
    args.append(len(txn.key_writes))
    return args, new_state_text


def _committed(store: Store, commit: _Commit) -> Cached:
    """What this process knows of the session after ``commit`` went
    through (remembered)."""
    txn, known, waiting = commit.txn, commit.known, commit.waiting
    known.update(txn.instance_writes)
    for task, trigger, name in txn.index_adds:
        if (task, trigger) in waiting or commit.complete:
            waiting.setdefault((task, trigger), []).append(name)
    for task, trigger, name in txn.index_removes:
        if name in waiting.get((task, trigger), []):
            waiting[(task, trigger)].remove(name)
    text = commit.state_text
    cached = Cached(txn.uid, commit.version + 1, text, known, waiting, commit.complete, state_sha(text))
    store.known.remember(txn.uid, cached)
    return cached


def fresh(store: Store, uid: str, read: Read) -> Cached:
    """What a read (or a refused commit's reply) says of the session
    (remembered); a corrupt state raises here, naming the session."""
    raw_version, state_text, records, found = read
    parse_state(uid, state_text)
    cached = Cached(uid, int(raw_version or 0), state_text, records, found, state_sha=state_sha(state_text))
    store.known.remember(uid, cached)
    return cached


def _merge(new: Cached, before: Cached) -> Cached:
    """A read at the version already known completes what was known."""
    if new.version != before.version or new.state_sha != before.state_sha or before.state_text is None:
        return new
    records, waiting = {**before.records, **new.records}, {**before.waiting, **new.waiting}
    return Cached(new.uid, new.version, new.state_text, records, waiting, before.complete, new.state_sha)


def _failed(store: Store, uid: str, exc: Exception) -> TriggersError:
    store.known.remember(uid, None)
    return exc if isinstance(exc, TriggersError) else store.error(uid, exc)


class Alone(Exception):
    """A reply that sends its transaction to run alone (a cluster node's
    error for one call of a pipeline)."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def pending(store: Store, jobs: Sequence[Job]) -> tuple[list[Any], list[Pending]]:
    """The outcomes of ``jobs`` so far (a refused UID, or ``LEFT``) and
    their transactions; a second job on one session runs after, alone."""
    outcomes: list[Any] = [LEFT] * len(jobs)
    items: list[Pending] = []
    seen: set[str] = set()
    for number, job in enumerate(jobs):
        try:
            uid = check_uid(job[0])
        except TriggersError as exc:
            outcomes[number] = exc
            continue
        if uid not in seen:
            seen.add(uid)
            items.append(Pending(number, uid, job, store.known.recall(uid)))
    return outcomes, items


def rounds(
    store: Store, items: list[Pending], outcomes: list[Any], limit: int
) -> Generator[list[Call], list[Any], None]:
    """Advance ``items`` for at most ``limit`` rounds, setting each one's
    outcome (its result, or a :class:`TriggersError`; any other exception
    is a bug, set too so that the caller settles the others first). Yields
    each round's script calls and receives their replies (a reply may be an
    exception); an item still pending at the end stays ``LEFT``."""
    scripts = store.scripts
    for _ in range(limit):
        if not items:
            return
        reads: list[Pending] = []
        commits: list[_Commit] = []
        for item in items:
            if item.must_read:
                item.must_read = False
                reads.append(item)
                continue
            try:
                kind, value = _attempt(store, item)
            except Exception as exc:  # a bug or a value that is not JSON: this job only
                outcomes[item.number] = exc
                continue
            if kind == "done":
                outcomes[item.number] = value
            elif kind == "read":
                reads.append(item)
            else:
                commits.append(value)
        orders = [(sorted(item.names), sorted(item.pairs)) for item in reads]
        calls: list[Call] = [
            (scripts.read.sha, store.keys(item.uid), [len(names), *names, *pair_args(pairs)])
            for item, (names, pairs) in zip(reads, orders, strict=True)
        ]
        calls += [(scripts.commit.sha, store.keys(c.pending.uid), c.args) for c in commits]
        replies = (yield calls) if calls else []
        items = []
        for item, (names, pairs), reply in zip(reads, orders, replies[: len(reads)], strict=True):
            if isinstance(reply, Alone):
                continue
            if isinstance(reply, Exception):
                outcomes[item.number] = _failed(store, item.uid, reply)
                continue
            try:  # a corrupt state fails its session's job only
                now = fresh(store, item.uid, parse_read(reply, names, pairs))
            except TriggersError as exc:
                outcomes[item.number] = _failed(store, item.uid, exc)
                continue
            item.cached, item.fresh = _merge(now, item.cached), True
            items.append(item)
        for commit, reply in zip(commits, replies[len(reads) :], strict=True):
            item = commit.pending
            if isinstance(reply, Alone):
                store.known.remember(item.uid, None)  # left to run alone, from a fresh read
            elif isinstance(reply, Exception):
                outcomes[item.number] = _failed(store, item.uid, reply)
            elif int(reply[0]) == 2:  # an idempotency key is used: re-run knowing it (the version held)
                flat = reply[1]
                item.used_keys.update({text(k): text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)})
                item.fresh = True
                items.append(item)
            elif int(reply[0]):
                item.after = _committed(store, commit)
                outcomes[item.number] = commit.result
            else:  # another writer committed first: re-run from the fresh records in the reply
                try:
                    refused = parse_read(reply[1:], sorted(item.names), sorted(item.pairs))
                    item.cached, item.fresh = fresh(store, item.uid, refused), False
                except TriggersError as exc:
                    outcomes[item.number] = _failed(store, item.uid, exc)
                    continue
                items.append(item)


def run_one(
    store: Store,
    job: Job,
    cached: Cached | bool | None,
    *,
    read_first: bool = False,
) -> tuple[Any, Cached | None]:
    """One transaction, a script call at a time (``store.call``): from
    ``cached`` (the worker's finish after its start), or what is known of
    the session (None), or a read (False, or ``read_first``). After a few
    refused commits it backs off with jitter and starts from a read.
    Returns (result, what is known after); raises the operation's error."""
    uid = check_uid(job[0])
    start = cached if isinstance(cached, Cached) and cached.uid == uid else store.known.recall(uid)
    item = Pending(0, uid, job, start, must_read=read_first or cached is False)
    for attempt in range(store.max_retries):
        outcome: list[Any] = [LEFT]
        steps = rounds(store, [item], outcome, LONE_ROUNDS)
        try:
            calls = next(steps)
            while True:
                calls = steps.send([_call(store, c) for c in calls])
        except StopIteration:
            pass
        if outcome[0] is not LEFT:
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            return outcome[0], item.after
        time.sleep(random.uniform(0, min(0.0001 * 2 ** (attempt + LONE_ROUNDS), 0.02)))  # noqa: S311 - jitter
        item = Pending(0, uid, job, item.cached, must_read=True, used_keys=item.used_keys)
    raise Conflict(f"session {uid!r}: gave up after {store.max_retries} conflicting attempts")


def _call(store: Store, one: Call) -> Any:
    try:
        return store.call(one)
    except CLIENT_ERRORS as exc:
        return exc


def read_only(operation: Callable[[SessionTxn], Any]) -> Callable[[SessionTxn], Any]:
    """``operation`` run in a transaction that refuses writes."""

    def run(txn: SessionTxn) -> Any:
        txn.read_only = True
        return operation(txn)

    return run
