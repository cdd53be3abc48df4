"""The Lua scripts of the Redis storage, and how their replies read.

Every script touches the keys of one session only (one hash slot, as Redis
Cluster requires) and decodes JSON at most to read a field: user JSON is
never re-encoded in Lua (cjson would round numbers).
"""

from __future__ import annotations

from typing import Any

import redis

from ...core.data import dumps
from ...core.state import Instance
from ..kv import parse_state, session_instances

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
    "from_dump",
    "key_prefix",
    "parse_read",
    "text",
]


def key_prefix(task: str, trigger: str) -> str:
    """Index members are ``<task JSON> NUL <trigger JSON> NUL <instance>``
    (JSON strings hold no raw NUL, so a prefix is unambiguous)."""
    return f"{dumps(task)}\x00{dumps(trigger)}\x00"


def from_dump(uid: str, state_text: Any, flat: list[Any]) -> dict[str, Instance]:
    """A session's instances from the DUMP script's reply (state, flat hash)."""
    if parse_state(uid, state_text) is None:
        return {}
    return session_instances(uid, {text(k): v for k, v in zip(flat[::2], flat[1::2], strict=True)})


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


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


#: A consistent read, shared by the read and commit scripts: version, state,
#: the named instance records and the records of the instances the index
#: lists under each prefix (task and trigger). Returns {version, state,
#: records, waiting names, waiting records, how many names each prefix gave}.
READ_FN = """
local function hmget(names)
  local out = {}
  for i = 1, #names, 500 do
    local chunk = redis.call('HMGET', KEYS[2], unpack(names, i, math.min(i + 499, #names)))
    for _, v in ipairs(chunk) do out[#out + 1] = v end
  end
  return out
end
local function read(names, prefixes)
  local waiting, counts = {}, {}
  for _, prefix in ipairs(prefixes) do
    local members = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. prefix, '(' .. prefix .. '\\255')
    for _, m in ipairs(members) do waiting[#waiting + 1] = string.sub(m, #prefix + 1) end
    counts[#counts + 1] = #members
  end
  local version = redis.call('GET', KEYS[3]) or '0'
  return {version, redis.call('GET', KEYS[1]) or false, hmget(names), waiting, hmget(waiting), counts}
end
"""

#: KEYS: state, instance hash, version, waiting index. ARGV: number of
#: names, names, then index prefixes.
READ = (
    READ_FN
    + """
local n = tonumber(ARGV[1])
local names, prefixes = {}, {}
for i = 2, n + 1 do names[#names + 1] = ARGV[i] end
for i = n + 2, #ARGV do prefixes[#prefixes + 1] = ARGV[i] end
return read(names, prefixes)
"""
)

#: Apply a transaction's writes if the session's version is the expected
#: one; else write nothing and return a fresh read of what the transaction
#: read, so that the re-run needs no separate read. KEYS: as READ. ARGV:
#: the expected "<version>:<SHA-1 of the state>" (so a state changed
#: behind the version's back, by hand or by a restore, is noticed too), ttl
#: (0: none; -1: an instance is in flight, never expire), state text ("":
#: unchanged), the number of names to read on a conflict, those names, the
#: number of index prefixes, those prefixes, the number of instance writes,
#: name/text pairs, the number of index entries to add, those entries, then
#: the entries to remove, then idempotency keys: key/value pairs and their
#: number, last (popped first). KEYS[5] is the hash of the session's used
#: keys. Returns {1}, {0, <what READ returns>}, or, when the version held
#: but a key is used already, {2, {key, value, ...}} (nothing written).
COMMIT = (
    READ_FN
    + """
local keyed = {}
for _ = 1, tonumber(table.remove(ARGV)) do
  local value = table.remove(ARGV); keyed[#keyed + 1] = table.remove(ARGV); keyed[#keyed + 1] = value
end
local i = 5
local names, prefixes = {}, {}
for _ = 1, tonumber(ARGV[4]) do names[#names + 1] = ARGV[i]; i = i + 1 end
local np = tonumber(ARGV[i]); i = i + 1
for _ = 1, np do prefixes[#prefixes + 1] = ARGV[i]; i = i + 1 end
local current = redis.call('GET', KEYS[1])
local seen = (redis.call('GET', KEYS[3]) or '0') .. ':' .. (current and redis.sha1hex(current) or '')
if seen ~= ARGV[1] then
  local r = read(names, prefixes)
  return {0, r[1], r[2], r[3], r[4], r[5], r[6]}
end
local used = {}
for k = 1, #keyed, 2 do
  local prior = redis.call('HGET', KEYS[5], keyed[k])
  if prior then used[#used + 1] = keyed[k]; used[#used + 1] = prior end
end
if #used > 0 then return {2, used} end
for k = 1, #keyed, 2 do redis.call('HSET', KEYS[5], keyed[k], keyed[k + 1]) end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3]) end
local nw = tonumber(ARGV[i]); i = i + 1
for _ = 1, nw do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
local adds = tonumber(ARGV[i]); i = i + 1
for _ = 1, adds do redis.call('ZADD', KEYS[4], 0, ARGV[i]); i = i + 1 end
for j = i, #ARGV do redis.call('ZREM', KEYS[4], ARGV[j]) end
redis.call('INCR', KEYS[3])
local ttl = tonumber(ARGV[2])
if ttl > 0 then for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
elseif ttl < 0 then for _, key in ipairs(KEYS) do redis.call('PERSIST', key) end end
return {1}
"""
)


#: The worker's start in one round trip (see ``RedisStorage.start``): any
#: of a scheduled instance's tokens (``i``, and the earlier ones in ``o``)
#: may start it, and the one that did becomes its only token.
#: KEYS: state, instance hash, version. ARGV: instance name, token, track
#: ("1"/"0"), start time (integer ms), the start's other fields as a JSON
#: fragment (",\"h\":..."), ttl (0: none). Returns {code, version, state,
#: record[, status before]}: 1 started; 0 not startable here (Python says
#: why, from the record), or nothing to write (track "0"); 2 a record in
#: another layout (use the generic path). The record ends with its status
#: field (see ``records``): the script replaces that with the start's fields
#: and the new status, never re-encoding the rest (cjson would round numbers).
START = """
local rec = redis.call('HGET', KEYS[2], ARGV[1])
local state = redis.call('GET', KEYS[1]) or false
local version = redis.call('GET', KEYS[3]) or '0'
if not rec then return {0, version, state, false} end
local d = cjson.decode(rec)
if d.s ~= 'scheduled' and d.s ~= 'running' then return {d.task and 2 or 0, version, state, rec} end
local token, others = ARGV[2], (d.s == 'scheduled' and type(d.o) == 'table') and d.o or {}
local ok = d.i == token
for _, t in ipairs(others) do if t == token then ok = true end end
if not ok or ARGV[3] ~= '1' then return {0, version, state, rec} end
local suffix = '"s":"' .. d.s .. '"}'
if d.task or string.sub(rec, -#suffix) ~= suffix then return {2, version, state, rec} end
local owner = ''
if d.i ~= token or #others > 0 then owner = ',"i":' .. cjson.encode(token) .. ',"o":[]' end
local started = tonumber(ARGV[4]) - (tonumber(d.c) or 0)
local new = string.sub(rec, 1, #rec - #suffix) .. '"b":' .. string.format('%d', started)
  .. ',"n":' .. string.format('%d', (tonumber(d.n) or 0) + 1) .. owner .. ARGV[5] .. ',"s":"running"}'
redis.call('HSET', KEYS[2], ARGV[1], new)
local v = redis.call('INCR', KEYS[3])
if tonumber(ARGV[6]) ~= 0 then for _, key in ipairs(KEYS) do redis.call('PERSIST', key) end end
return {1, tostring(v), state, new, d.s}
"""


#: Delete a session if nothing is in flight and its last change is older
#: than ARGV[1] (a time), unless ARGV[2] is "1" (a dry run). KEYS: as
#: COMMIT. Returns 1 if it is (or would be) deleted.
PURGE = """
local state = redis.call('GET', KEYS[1])
if not state then return 0 end
local ok, d = pcall(cjson.decode, state)
if not ok or type(d) ~= 'table' then return 0 end
if (tonumber(d.in_flight) or 0) > 0 or (tonumber(d.updated_at) or 0) >= tonumber(ARGV[1]) then return 0 end
if ARGV[2] ~= '1' then redis.call('DEL', unpack(KEYS)) end
return 1
"""

#: A consistent read of a whole session: {state, flat instance hash}.
DUMP = "return {redis.call('GET', KEYS[1]) or false, redis.call('HGETALL', KEYS[2])}"
