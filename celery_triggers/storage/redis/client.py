"""The Redis backend: URL and connection, keys, errors, and the session
lifecycle (inspection, listing, purge). Transactions are
:mod:`.transaction`'s, pipelined by :mod:`.batch`; the worker's start is
:mod:`.start`'s."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.cluster

from ...core.errors import CorruptSession, InvalidStorageURL, StorageError
from ...core.state import Instance
from ..base import Job, StorageBackend
from ..kv import session_digest
from ..summaries import SessionSummary
from ..txn import Prefetch, SessionTxn, check_uid
from ..urls import mask_url
from .deadlines import RedisDeadlines
from .known import Cached, Recent
from .layout import from_dump
from .scripts import CLIENT_ERRORS, Call, Scripts, call_one
from .transaction import read_only, run_one

__all__ = ["RedisStorage"]

R = TypeVar("R")


class RedisStorage(RedisDeadlines, StorageBackend):
    """``redis://``, ``rediss://``, ``redis+cluster://``, ``rediss+cluster://``."""

    #: Unreachable: refused, reset or timed out; a cluster with no answering
    #: node or slot owner, or failing over (CLUSTERDOWN, TRYAGAIN, READONLY
    #: from a demoted primary); a server still loading its data.
    #: (Those a redis-py release does not have are left out: 4.5 lacks some.)
    connection_errors = tuple(
        getattr(redis.exceptions, name)
        for name in (
            "ConnectionError",
            "TimeoutError",
            "ClusterDownError",
            "TryAgainError",
            "ReadOnlyError",
            "RedisClusterUnreachableError",
            "SlotNotCoveredError",
        )
        if hasattr(redis.exceptions, name)
    )

    def is_connection_error(self, exc: BaseException) -> bool:
        """A wrong password or a refused ACL is no connection error, though
        redis-py derives it from ``ConnectionError``: it would fail again."""
        refused = tuple(
            getattr(redis.exceptions, name)
            for name in ("AuthenticationError", "AuthorizationError")
            if hasattr(redis.exceptions, name)
        )
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
        cluster = parts.scheme.endswith("+cluster")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise InvalidStorageURL(
                f"Redis storage {mask_url(url)!r}: database {db!r} is not a number (redis://host:port/0)"
            )
        if cluster and db not in ("", "0"):
            raise InvalidStorageURL(f"Redis storage {mask_url(url)!r}: a Redis Cluster has database 0 only")
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "ct")
        scheme = parts.scheme.removesuffix("+cluster")
        client_url = urlunsplit(parts._replace(scheme=scheme, query=urlencode(query)))
        options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5}
        try:
            client = (
                redis.cluster.RedisCluster.from_url(client_url, **options)
                if cluster
                else redis.Redis.from_url(client_url, **options)
            )
        except (ValueError, TypeError) as exc:  # redis-py names the option at fault, never its value
            raise InvalidStorageURL(f"Redis storage {mask_url(url)!r}: {exc}") from None
        # The same server for redis.asyncio (see arun_many); none for a cluster.
        self._setup(client, prefix, session_ttl, cluster, None if cluster else (client_url, options))

    @classmethod
    def on_client(cls, client: Any, url: str, prefix: str, session_ttl: float | None) -> RedisStorage:
        """This layout on a client someone else configured (the Django cache
        storage on a Redis-backed cache); ``url`` is only shown."""
        self = cls.__new__(cls)
        StorageBackend.__init__(self, url)
        self._setup(client, prefix, session_ttl, False, None)
        return self

    def _setup(
        self,
        client: Any,
        prefix: str,
        session_ttl: float | None,
        cluster: bool,
        async_from: tuple[str, dict[str, Any]] | None,
    ) -> None:
        self.client: Any = client
        self.cluster = cluster
        self.prefix = prefix
        self.session_ttl = float(session_ttl) if session_ttl else None
        self.scripts = Scripts(client)
        #: What this process knows of the sessions it used last.
        self.known = Recent()
        #: How to open a ``redis.asyncio`` client on the same server (None:
        #: ``arun_many`` in a thread), and the clients opened, per event loop.
        self.async_from = async_from
        self.async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    # -- keys and errors ----------------------------------------------------
    def keys(self, uid: str) -> list[str]:
        """The session's keys: state, instance hash, version, the earlier
        layout's waiting index, the waiting lists (see :mod:`.layout`), the
        idempotency keys used (one hash tag: one slot of a cluster)."""
        base = f"{self.prefix}:{{{session_digest(uid)}}}"
        return [f"{base}:state", f"{base}:inst", f"{base}:version", f"{base}:wait", f"{base}:waiting", f"{base}:keys"]

    def error(self, uid: str | None, exc: Exception) -> StorageError:
        """A client error as a storage error (:class:`StorageUnavailable`
        when the server could not be reached), its URL masked."""
        where = f"session {uid!r}: " if uid is not None else ""
        return self.storage_error(exc, f"{where}Redis storage {mask_url(self.url)} failed: {exc}")

    def ttl_arg(self, state: dict[str, Any]) -> int:
        """The commit script's ttl argument for :meth:`expiry`: 0 none, -1
        persist (work in flight), else seconds."""
        if not self.session_ttl:
            return 0
        ttl = self.expiry(bool(state.get("in_flight")), str(state.get("uid") or ""))
        return -1 if ttl is None else math.ceil(ttl)

    def call(self, call: Call) -> Any:
        """One script call: ``EVALSHA`` packed by hiredis (a redis-py
        ``Script`` object checks its client's class on every call, and the
        client encodes every argument in Python); after a
        ``NOSCRIPT`` (a restart, ``SCRIPT FLUSH``) the script is loaded and
        called once more. A cluster client routes through ``Script``."""
        if self.cluster:
            return self.scripts.call(call)
        try:
            return call_one(self.client, call)
        except redis.exceptions.NoScriptError:
            return self.scripts.call(call)  # loads it, then calls it

    # -- transactions -------------------------------------------------------
    def run(
        self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = (), cached: Any = None
    ) -> tuple[R, Any]:
        """One optimistic transaction (see :mod:`.transaction`): one round
        trip when this process knows the session or it is new, one more
        per conflict."""
        result, after = run_one(self, (uid, operation, prefetch), cached)
        return result, after

    def read(self, uid: str, operation: Callable[[SessionTxn], R], prefetch: Prefetch = ()) -> R:
        """Reads always read: a read-only operation has no commit to check
        a guess against."""
        result: R = run_one(self, (uid, read_only(operation), prefetch), False)[0]
        return result

    def run_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Pipelined: the commits (and reads) of different sessions share
        round trips (see :mod:`.batch`; on a cluster, one pipeline per
        primary)."""
        from .batch import run_many

        return run_many(self, jobs)

    async def arun_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Native ``redis.asyncio``, pipelined as :meth:`run_many`; in a
        thread on a cluster or a client configured elsewhere (Django cache)."""
        if self.async_from is None:
            return await super().arun_many(jobs)
        from .batch import arun_many

        return await arun_many(self, jobs)

    def start(
        self, uid: str, name: str, token: str, now: float, *, track: bool, metadata: Mapping[str, Any]
    ) -> tuple[Instance, Instance, dict[str, Any], Cached | None]:
        """One round trip (see :func:`.start.start`)."""
        from .start import start

        def generic() -> tuple[Instance, Instance, dict[str, Any], Any]:
            return super(RedisStorage, self).start(uid, name, token, now, track=track, metadata=metadata)

        return start(self, generic, uid, name, token, now, track=track, metadata=metadata, session_ttl=self.session_ttl)

    # -- inspection and lifecycle --------------------------------------------
    def instances(self, uid: str) -> dict[str, Instance]:
        check_uid(uid)
        try:
            state_text, flat = self.scripts.dump(keys=self.keys(uid)[:2])
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc
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
                        self.scripts.dump(keys=self.keys(uid)[:2], client=pipe)
                    replies = pipe.execute()
            except CLIENT_ERRORS as exc:
                raise self.error(None, exc) from exc
            for uid, (state_text, flat) in zip(chunk, replies, strict=True):
                try:
                    out[uid] = from_dump(uid, state_text, flat)
                except CorruptSession as exc:
                    out[uid] = exc
        return out

    def sessions(self) -> list[str]:
        """UIDs of the stored sessions (states read 500 at a time; see
        :func:`.listing.iter_sessions`)."""
        return sorted(uid for chunk in self.iter_sessions() for uid in chunk)

    def iter_sessions(self, batch: int = 500) -> Iterator[list[str]]:
        from .listing import iter_sessions

        return iter_sessions(self, batch)

    def session_exists(self, uid: str) -> bool:
        try:
            return bool(self.client.exists(self.keys(check_uid(uid))[0]))
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc

    def iter_instances(self, uid: str, batch: int = 1000) -> Iterator[list[Instance]]:
        """One ``HMGET`` per batch, of the names the session's state lists."""
        from .listing import iter_instances

        return iter_instances(self, uid, batch)

    def summaries(self, uids: Sequence[str], *, activity: bool = True) -> dict[str, SessionSummary | CorruptSession]:
        """From the states alone where they keep one (see :mod:`.listing`)."""
        from .listing import summaries

        return summaries(self, uids)

    def delete_session(self, uid: str) -> None:
        check_uid(uid)
        self.known.remember(uid, None)
        try:
            self.client.delete(*self.keys(uid))
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc

    def delete_if_idle(self, uid: str, cutoff: float, *, dry_run: bool = False) -> bool:
        if not dry_run:
            self.known.remember(uid, None)
        try:
            return bool(self.scripts.purge(keys=self.keys(uid), args=[repr(float(cutoff)), "1" if dry_run else "0"]))
        except CLIENT_ERRORS as exc:
            raise self.error(uid, exc) from exc

    def close(self) -> None:
        self.client.close()
