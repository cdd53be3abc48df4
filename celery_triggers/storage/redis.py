"""Redis storage (``redis://host:port/db``): production, many machines.

Keys per session: ``state`` (configs, fired triggers, task records),
``inst`` (a hash of instance records), ``version``, and ``wait`` (a sorted
set indexing unstarted instances by each trigger they await, read by
lexicographic range).

Atomicity: optimistic concurrency on a per-session version (a counter, and
the SHA-1 of the state, so a state changed behind the counter's back is
noticed too). A transaction starts from what this process knows of the
session (its last read or commit there, kept for the 1,024 most recent
sessions), or from the guess that the session is new; it reads only what it
needs and does not know. It runs the pure engine and commits with one Lua
script that applies the writes only if the version is still the one it
started from, bumping it. If another writer committed in between, the script
changes nothing and returns a fresh read of what the transaction used, and
the whole operation (engine included) re-runs from it. So a fire costs one
round trip when this process fired there last or the session is new, and
one more per conflict. An operation that started from what was known but
writes nothing, or raises, is re-run on a fresh read (it has no commit to
check it); read-only transactions always read. The worker's start is one
script (``start``); its finish resumes from what the start returned.

Why not Lua alone: the trigger semantics live in the pure Python engine (one
implementation for every backend). Why not a lock: a process killed in the
middle leaves nothing to expire, since its commit never ran. Why not
WATCH/MULTI: it needs a round trip for WATCH and one per read (redis-py runs
commands one by one while watching); the version check does the same job in
the commit itself.

Keys share the hash tag ``{<session digest>}``, so a session's keys live in
one slot: every script touches one slot, as Redis Cluster requires.
``redis+cluster://host:port`` (``rediss+cluster://`` with TLS; any node of
the cluster) uses redis-py's ``RedisCluster``, and listing sessions scans
every master. Values are JSON.

URL options: ``?prefix=ct`` (key prefix). App setting
``triggers_session_ttl`` (seconds) expires a session that long after its
last change.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import CorruptSession, InvalidStorageURL, StorageError
from ..state import Instance
from . import mask_url
from . import redis_scripts as scripts
from .base import Conflict, Job, Prefetch, SessionTxn, StorageBackend, check_uid
from .kv import KVTxn, parse_state, session_digest, uid_of
from .redis_known import Cached as _Cached
from .redis_known import Recent, begin, state_sha
from .redis_scripts import from_dump, key_prefix, text

try:
    import redis
    import redis.cluster
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis storage needs redis-py: pip install 'celery-triggers[redis]'") from exc

__all__ = ["RedisStorage"]

logger = logging.getLogger("celery_triggers")


#: Everything redis-py raises (its cluster client's own errors are not RedisErrors).
CLIENT_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)


class RedisStorage(StorageBackend):
    _async_from: tuple[str, dict[str, Any]] | None

    #: Unreachable: refused, reset or timed out; a cluster with no answering
    #: node or slot owner, or failing over (CLUSTERDOWN, TRYAGAIN, READONLY
    #: from a demoted primary); a server still loading its data.
    connection_errors = (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.exceptions.ClusterDownError,
        redis.exceptions.TryAgainError,
        redis.exceptions.ReadOnlyError,
        redis.exceptions.RedisClusterUnreachableError,
        redis.exceptions.SlotNotCoveredError,
    )

    def is_connection_error(self, exc: BaseException) -> bool:
        """A wrong password or a refused ACL is no connection error, though
        redis-py derives it from ``ConnectionError``: it would fail again."""
        refused = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)
        return super().is_connection_error(exc) and not isinstance(exc, refused)

    def __init__(self, url: str, *, session_ttl: float | None = None, **_: Any):
        super().__init__(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:  # not quoted: the part at fault may be a misplaced password
            part = "its port is not a number from 0 to 65535" if "Port" in str(exc) else "its host is malformed"
            raise InvalidStorageURL(
                f"Redis storage {mask_url(url)!r}: {part} (redis://[[user]:password@]host:port/db)"
            ) from None
        self.cluster = parts.scheme.endswith("+cluster")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise InvalidStorageURL(
                f"Redis storage {mask_url(url)!r}: database {db!r} is not a number (redis://host:port/0)"
            )
        if self.cluster and db not in ("", "0"):
            raise InvalidStorageURL(f"Redis storage {mask_url(url)!r}: a Redis Cluster has database 0 only")
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "ct")
        scheme = parts.scheme.removesuffix("+cluster")
        client_url = urlunsplit(parts._replace(scheme=scheme, query=urlencode(query)))
        options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
        try:
            client = (
                redis.cluster.RedisCluster.from_url(client_url, **options)
                if self.cluster
                else redis.Redis.from_url(client_url, **options)
            )
        except (ValueError, TypeError) as exc:  # redis-py names the option at fault, never its value
            raise InvalidStorageURL(f"Redis storage {mask_url(url)!r}: {exc}") from None
        self._setup(client, prefix, session_ttl)
        if not self.cluster:  # the same server for redis.asyncio (see arun_many)
            self._async_from = (client_url, dict(options))

    @classmethod
    def on_client(cls, client: Any, url: str, prefix: str, session_ttl: float | None) -> RedisStorage:
        """This layout on a client someone else configured (the Django cache
        storage on a Redis-backed cache); ``url`` is only shown."""
        self = cls.__new__(cls)
        StorageBackend.__init__(self, url)
        self.cluster = False
        self._setup(client, prefix, session_ttl)
        return self

    def _setup(self, client: Any, prefix: str, session_ttl: float | None) -> None:
        self.client: Any = client
        self.prefix = prefix
        self.session_ttl = float(session_ttl) if session_ttl else None
        self._commit = self.client.register_script(scripts.COMMIT)
        self._start = self.client.register_script(scripts.START)
        self._read = self.client.register_script(scripts.READ)
        self._dump = self.client.register_script(scripts.DUMP)
        self._recent = Recent()
        self._purge = self.client.register_script(scripts.PURGE)
        #: How to open a redis.asyncio client on the same server (None: arun_many in a thread).
        self._async_from = None
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    # -- keys ---------------------------------------------------------------
    def _keys(self, uid: str) -> tuple[str, str, str, str]:
        base = f"{self.prefix}:{{{session_digest(uid)}}}"
        return f"{base}:state", f"{base}:inst", f"{base}:version", f"{base}:wait"

    def _error(self, uid: str | None, exc: Exception) -> StorageError:
        where = f"session {uid!r}: " if uid is not None else ""
        return self.storage_error(exc, f"{where}Redis storage {mask_url(self.url)} failed: {exc}")

    # -- transactions -------------------------------------------------------
    def read_transaction(self, uid: str, prefetch: Prefetch = ()) -> AbstractContextManager[SessionTxn]:
        """Reads always read: a read-only operation has no commit to check a
        guess against."""
        return self.transaction(uid, prefetch, cached=False)

    @contextmanager
    def transaction(
        self, uid: str, prefetch: Collection[str | tuple[str, str]] = (), cached: _Cached | bool | None = None
    ) -> Iterator[SessionTxn]:
        """``cached``: a :class:`_Cached` to start from (the worker's finish
        after its start); None: start from what this process knows of the
        session, or guess it is new; False: read first.

        Starting from what is known saves the read: the commit checks the
        version and, on a conflict, returns a fresh read that the re-run
        starts from (so a conflict costs one more round trip). An operation
        that started from what was known but writes nothing, or raises, has
        no commit to check it: it is re-run on a fresh read.
        """
        keys = list(self._keys(uid))
        names = sorted(p for p in prefetch if isinstance(p, str))
        pairs = sorted(p for p in prefetch if isinstance(p, tuple))
        if cached is None:
            cached = self._recent.recall(uid)
        speculative = isinstance(cached, _Cached) and cached.uid == uid
        try:
            if speculative:
                assert isinstance(cached, _Cached)
                version, sha, state, known, waiting, complete = begin(cached)
                base_text = cached.state_text
            else:
                raw_version, state_text, known, waiting = self._read_some(keys, names, pairs)
                base_text = state_text
                version, complete, sha = int(raw_version or 0), False, state_sha(state_text)
                state = parse_state(uid, state_text)
            read_names, read_pairs = set(names), set(pairs)

            def read_more(more_names: list[str], more_pairs: list[tuple[str, str]]) -> None:
                """Read what the operation needs and was not known. Starting
                from what was known, read everything the operation has used
                so far: at the same version, it completes what is known;
                at another, what was known is stale, and the operation
                re-runs from this read."""
                if not speculative:
                    _, _, records, found = self._read_some(keys, more_names, more_pairs)
                    known.update(records)
                    waiting.update(found)
                    return
                all_names, all_pairs = sorted(read_names | set(more_names)), sorted(read_pairs | set(more_pairs))
                raw_version, state_text, records, found = self._read_some(keys, all_names, all_pairs)
                if int(raw_version or 0) != version or state_sha(state_text) != sha:
                    stale = Conflict(f"session {uid!r}: what this process knew was stale")
                    stale.fresh = self._fresh(uid, raw_version, state_text, records, found)
                    raise stale
                known.update(records)
                waiting.update(found)

            def fetch(wanted: list[str]) -> dict[str, Any]:
                missing = [n for n in wanted if n not in known]
                if missing:
                    read_more(missing, [])
                read_names.update(wanted)
                return {n: known[n] for n in wanted}

            def fetch_waiting(wanted: list[tuple[str, str]]) -> dict[str, Any]:
                missing = [p for p in wanted if p not in waiting and not complete]
                if missing:
                    read_more([], missing)
                read_pairs.update(wanted)
                return {n: known[n] for p in wanted for n in waiting.get(p, [])}

            txn = KVTxn(uid, state, fetch, fetch_waiting)
            try:
                yield txn
            except Conflict:
                raise
            except Exception as exc:
                if speculative:  # perhaps only because what was known is stale: re-run on a fresh read
                    raise Conflict(f"session {uid!r}: re-run on a fresh read ({exc!r})") from exc
                raise
            if not txn.changed:
                if speculative:
                    raise Conflict(f"session {uid!r}: nothing to commit; re-run on a fresh read")
                if not txn.is_new:
                    txn.after_commit = _Cached(uid, version, base_text, known, waiting, complete, sha)
                    self._recent.remember(uid, txn.after_commit)
                return
            args, new_state_text = self._commit_args(txn, version, sha, read_names, read_pairs)
            reply = self._commit(keys=keys, args=args)
            if not int(reply[0]):
                conflict = Conflict(f"session {uid!r}: another writer committed first")
                conflict.fresh = self._refused(uid, reply, read_names, read_pairs)
                raise conflict
            txn.after_commit = self._committed(
                txn, version, sha, new_state_text or base_text or "", known, waiting, complete
            )
        except CLIENT_ERRORS as exc:
            self._recent.remember(uid, None)
            raise self._error(uid, exc) from exc

    def _commit_args(
        self, txn: KVTxn, version: int, sha: str, read_names: set[str], read_pairs: set[tuple[str, str]]
    ) -> tuple[list[Any], str]:
        """The COMMIT script's arguments for ``txn`` started at ``version``
        (what it read is re-read on a conflict), and the new state text
        ("": unchanged)."""
        conflict_names = sorted(read_names)
        conflict_pairs = sorted(read_pairs)
        new_state_text = txn.state_text() if (txn.state_dirty or txn.is_new) else ""
        args: list[Any] = [f"{version}:{sha}", self._ttl(txn.state), new_state_text]
        args += [len(conflict_names), *conflict_names]
        args += [len(conflict_pairs), *(key_prefix(t, x) for t, x in conflict_pairs)]
        args.append(len(txn.instance_writes))
        for name, record in txn.instance_writes.items():
            args += [name, record]
        args.append(len(txn.index_adds))
        args += sorted(key_prefix(t, x) + n for t, x, n in txn.index_adds)
        args += sorted(key_prefix(t, x) + n for t, x, n in txn.index_removes)
        return args, new_state_text

    def _committed(
        self,
        txn: KVTxn,
        version: int,
        sha: str,
        state_text: str | bytes,
        known: dict[str, Any],
        waiting: dict[tuple[str, str], list[str]],
        complete: bool,
    ) -> _Cached:
        """What this process knows of the session after ``txn`` committed
        over ``version``, its state now ``state_text`` (remembered)."""
        sha = state_sha(state_text)
        known.update(txn.instance_writes)
        for task, trigger, name in txn.index_adds:
            if (task, trigger) in waiting or complete:
                waiting.setdefault((task, trigger), []).append(name)
        for task, trigger, name in txn.index_removes:
            if name in waiting.get((task, trigger), []):
                waiting[(task, trigger)].remove(name)
        cached = _Cached(txn.uid, version + 1, state_text, known, waiting, complete, sha)
        self._recent.remember(txn.uid, cached)
        return cached

    def _refused(self, uid: str, reply: Any, names: set[str], pairs: set[tuple[str, str]]) -> _Cached:
        """What a refused commit's reply (a fresh read of what the
        transaction used: ``names`` and ``pairs``) says of the session."""
        return self._fresh(uid, *self._parse_read(reply[1:], sorted(names), sorted(pairs)))

    def _fresh(
        self,
        uid: str,
        raw_version: Any,
        state_text: Any,
        records: dict[str, Any],
        found: dict[tuple[str, str], list[str]],
    ) -> _Cached:
        """What a read (or a refused commit's reply) says of the session (remembered)."""
        parse_state(uid, state_text)  # a corrupt state raises here, naming the session
        fresh = _Cached(uid, int(raw_version or 0), state_text, records, found, state_sha=state_sha(state_text))
        self._recent.remember(uid, fresh)
        return fresh

    # -- many sessions at once (redis_batch) ----------------------------------
    def run_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Pipelined: the commits (and reads) of different sessions share
        round trips (see :mod:`.redis_batch`; on a cluster, one pipeline per
        primary)."""
        from .redis_batch import run_many

        return run_many(self, jobs)

    async def arun_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Native ``redis.asyncio``, pipelined as :meth:`run_many`; in a
        thread on a cluster or a client configured elsewhere (Django cache)."""
        if self._async_from is None:
            return await super().arun_many(jobs)
        from .redis_batch import arun_many

        return await arun_many(self, jobs)

    def _ttl(self, state: dict[str, Any]) -> int:
        """The commit script's ttl argument for :meth:`expiry`: 0 none, -1
        persist (work in flight), else seconds."""
        if not self.session_ttl:
            return 0
        ttl = self.expiry(bool(state.get("in_flight")))
        return -1 if ttl is None else math.ceil(ttl)

    def _read_some(
        self, keys: list[str], names: list[str], pairs: list[tuple[str, str]]
    ) -> tuple[Any, Any, dict[str, Any], dict[tuple[str, str], list[str]]]:
        """One read script: version, state, records of ``names`` and of the
        instances awaiting each (task, trigger) pair."""
        prefixes = [key_prefix(t, x) for t, x in pairs]
        return self._parse_read(self._read(keys=keys, args=[len(names), *names, *prefixes]), names, pairs)

    @staticmethod
    def _parse_read(
        raw: Any, names: list[str], pairs: list[tuple[str, str]]
    ) -> tuple[Any, Any, dict[str, Any], dict[tuple[str, str], list[str]]]:
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

    def start(
        self, uid: str, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any], Any]:
        """One round trip (see :func:`.redis_start.start`)."""
        from .redis_start import start

        return start(self, uid, name, token, now, track=track, metadata=metadata)

    # -- inspection and lifecycle --------------------------------------------
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        state_key, inst_key, *_ = self._keys(uid)
        try:
            state_text, flat = self._dump(keys=[state_key, inst_key])
        except CLIENT_ERRORS as exc:
            raise self._error(uid, exc) from exc
        return from_dump(uid, state_text, flat)

    def instances_many(self, uids: list[str]) -> dict[str, dict[str, Instance] | CorruptSession]:
        """Pipelined, 500 sessions per round trip (one at a time on a cluster)."""
        if self.cluster:
            return super().instances_many(uids)
        out: dict[str, dict[str, Instance] | CorruptSession] = {}
        for start in range(0, len(uids), 500):
            chunk = [check_uid(u) for u in uids[start : start + 500]]
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    for uid in chunk:
                        self._dump(keys=list(self._keys(uid))[:2], client=pipe)
                    replies = pipe.execute()
            except CLIENT_ERRORS as exc:
                raise self._error(None, exc) from exc
            for uid, (state_text, flat) in zip(chunk, replies, strict=True):
                try:
                    out[uid] = from_dump(uid, state_text, flat)
                except CorruptSession as exc:
                    out[uid] = exc
        return out

    def sessions(self) -> list[str]:
        """UIDs of the stored sessions (states read 500 at a time). A session
        whose state is corrupt is listed when its UID can still be read
        (reading it then raises :class:`CorruptSession`); else it is left
        out with a warning."""
        uids = []
        try:
            keys = list(self.client.scan_iter(match=f"{self.prefix}:{{*}}:state", count=500))
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                texts = self.client.mget_nonatomic(chunk) if self.cluster else self.client.mget(chunk)
                for text in texts:
                    if text is None:
                        continue
                    try:
                        state = parse_state("?", text)
                        uid = state["uid"] if state is not None else None
                    except CorruptSession:
                        uid = uid_of(text)
                    if isinstance(uid, str):
                        uids.append(uid)
                    else:
                        logger.warning("celery-triggers: a stored session state is unreadable, UID included")
        except CLIENT_ERRORS as exc:
            raise self._error(None, exc) from exc
        return sorted(uids)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        self._recent.remember(uid, None)
        try:
            self.client.delete(*self._keys(uid))
        except CLIENT_ERRORS as exc:
            raise self._error(uid, exc) from exc

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        if not dry_run:
            self._recent.remember(uid, None)
        try:
            return bool(self._purge(keys=list(self._keys(uid)), args=[repr(float(cutoff)), "1" if dry_run else "0"]))
        except CLIENT_ERRORS as exc:
            raise self._error(uid, exc) from exc

    def close(self) -> None:
        self.client.close()
