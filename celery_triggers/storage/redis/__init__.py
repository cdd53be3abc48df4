"""Redis storage (``redis://host:port/db``): production, many machines.

Modules, by seam: :mod:`.client` (the backend: URL, connection, keys,
errors, inspection), :mod:`.scripts` (the Lua scripts and their replies),
:mod:`.known` (what a process knows of the sessions it used last),
:mod:`.transaction` (the optimistic transaction, written once),
:mod:`.batch` (many sessions' transactions in pipelines, blocking or
asyncio), :mod:`.start` (the worker's start in one script).

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

try:
    import redis  # noqa: F401 - every module here needs it: say which extra installs it
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis storage needs redis-py: pip install 'celery-triggers[redis]'") from exc

from .client import RedisStorage

__all__ = ["RedisStorage"]
