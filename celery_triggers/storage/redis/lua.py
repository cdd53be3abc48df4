"""The Lua source of the Redis storage's scripts (:mod:`.scripts` registers
and calls them).

Every script touches the keys of one session only (one hash slot, as Redis
Cluster requires) and decodes JSON at most to read a field: user JSON is
never re-encoded in Lua (cjson would round numbers). The layout they read
and write is :mod:`.layout`'s.
"""

from __future__ import annotations

from .layout import ALONE, GROUP, LIST

__all__ = ["COMMIT", "DUMP", "LIB", "PURGE", "READ", "START"]


#: What every script but DUMP and PURGE shares: the records (groups, the
#: records kept alone, the earlier layout's) and the waiting index. KEYS:
#: state, instance hash, version, the earlier layout's ``wait`` sorted set,
#: the ``waiting`` hash. A group is read once per call (where its records
#: start: ``pos``) and its changes kept aside (``new``); ``flush`` writes
#: each changed group once, copying its unchanged records in runs.
LIB = (
    f"local G, ALONE, LIST = {GROUP}, {ALONE}, {LIST}\n"
    + r"""
local INST, WAIT, LISTS = KEYS[2], KEYS[4], KEYS[5]
local groups = {}
local function split(name)
  local task, n = string.match(name, '^(.*)#(%d+)$')
  return task, tonumber(n)
end
local function group(task, n)
  local field = task .. '#' .. (n - n % G)
  local g = groups[field]
  if g then return g end
  local v = redis.call('HGET', INST, field)
  g = {field = field, value = '', pos = {}, new = {}}
  if v and string.byte(v, 1) == 30 then
    g.value = v
    local p = 1
    while p do
      g.pos[#g.pos + 1] = p
      p = string.find(v, '\30', p + 1, true)
    end
  elseif v then
    g.bare = v
  end
  groups[field] = g
  return g
end
local function entry(g, rel)
  local e = g.new[rel]
  if e ~= nil then return e end
  local p = g.pos[rel + 1]
  if not p then return '' end
  return string.sub(g.value, p + 1, (g.pos[rel + 2] or #g.value + 1) - 1)
end
local function record(name, own)
  if own and string.byte(own, 1) ~= 30 then return own end
  local task, n = split(name)
  if not task then return false end
  local rec = entry(group(task, n), n % G)
  if rec == '' then return false end
  if rec == '\31' then return redis.call('HGET', INST, name .. '~') or false end
  return rec
end
local function records(names)
  local out = {}
  for i = 1, #names, 500 do
    local last = math.min(i + 499, #names)
    local own = redis.call('HMGET', INST, unpack(names, i, last))
    for j = i, last do out[j] = record(names[j], own[j - i + 1]) end
  end
  return out
end
local function place(g, name, rel, rec)
  local old = entry(g, rel)
  if #rec > ALONE then
    redis.call('HSET', INST, name .. '~', rec)
    rec = '\31'
  elseif old == '\31' then
    redis.call('HDEL', INST, name .. '~')
  end
  if rel ~= 0 then redis.call('HDEL', INST, name) end  -- the earlier layout's field would win
  g.new[rel] = rec
  g.dirty = true
end
local function write(name, rec)
  local task, n = split(name)
  local g, rel = group(task, n), n % G
  if g.bare then
    local bare = g.bare
    g.bare = nil
    place(g, task .. '#' .. (n - rel), 0, bare)
  end
  place(g, name, rel, rec)
end
local function flush()
  for _, g in pairs(groups) do
    if g.dirty then
      local stored = #g.pos
      local count = stored
      for rel in pairs(g.new) do count = math.max(count, rel + 1) end
      local parts, rel = {}, 0
      while rel < count do
        if g.new[rel] ~= nil then
          parts[#parts + 1] = '\30' .. g.new[rel]
          rel = rel + 1
        else
          local r = rel
          while r < count and g.new[r] == nil do r = r + 1 end
          if rel == 0 and r >= stored then
            parts[#parts + 1] = g.value
          elseif rel < stored then
            parts[#parts + 1] = string.sub(g.value, g.pos[rel + 1], (g.pos[r + 1] or #g.value + 1) - 1)
          end
          if r > stored then parts[#parts + 1] = string.rep('\30', r - math.max(rel, stored)) end
          rel = r
        end
      end
      redis.call('HSET', INST, g.field, table.concat(parts))
      g.dirty = false
    end
  end
end
local function waiting(field, prefix, task)
  local names = {}
  local head = redis.call('HGET', LISTS, field)
  if head then
    local chunks = {}
    for c in string.gmatch(head, '%d+') do chunks[#chunks + 1] = field .. '#' .. c end
    for i = 1, #chunks, 500 do
      for _, list in ipairs(redis.call('HMGET', LISTS, unpack(chunks, i, math.min(i + 499, #chunks)))) do
        if list then for n in string.gmatch(list, '%d+') do names[#names + 1] = task .. '#' .. n end end
      end
    end
  end
  for _, m in ipairs(redis.call('ZRANGEBYLEX', WAIT, '[' .. prefix, '(' .. prefix .. '\255')) do
    names[#names + 1] = string.sub(m, #prefix + 1)
  end
  return names
end
local function rechunk(list, adds, removes)
  if #removes == 0 and #adds <= 8 then
    for _, n in ipairs(adds) do
      if not string.find(list, ',' .. n .. ',', 1, true) then list = list .. n .. ',' end
    end
    return list
  end
  local drop, kept = {}, {}
  for _, n in ipairs(removes) do drop[n] = true end
  for n in string.gmatch(list, '%d+') do
    if not drop[n] then kept[#kept + 1] = n; drop[n] = true end
  end
  for _, n in ipairs(adds) do
    if not drop[n] then kept[#kept + 1] = n; drop[n] = true end
  end
  return #kept > 0 and (',' .. table.concat(kept, ',') .. ',') or ','
end
local function relist(field, adds, removes)
  local chunks = {}
  for side, numbers in ipairs({adds, removes}) do
    for _, n in ipairs(numbers) do
      local c = math.floor(tonumber(n) / LIST)
      chunks[c] = chunks[c] or {{}, {}}
      table.insert(chunks[c][side], n)
    end
  end
  local head  -- read only when a chunk comes or goes
  for c, change in pairs(chunks) do
    local key = field .. '#' .. c
    local old = redis.call('HGET', LISTS, key) or ','
    local new = rechunk(old, change[1], change[2])
    if new ~= old and (new == ',' or old == ',') then
      head = head or redis.call('HGET', LISTS, field) or ','
      if new == ',' then head = string.gsub(head, ',' .. c .. ',', ',', 1) else head = head .. c .. ',' end
    end
    if new == ',' then redis.call('HDEL', LISTS, key) elseif new ~= old then redis.call('HSET', LISTS, key, new) end
  end
  if head == ',' then redis.call('HDEL', LISTS, field) elseif head then redis.call('HSET', LISTS, field, head) end
end
local function read(names, wanted)
  local found, counts = {}, {}
  for i = 1, #wanted, 3 do
    local names_of = waiting(wanted[i], wanted[i + 1], wanted[i + 2])
    for _, n in ipairs(names_of) do found[#found + 1] = n end
    counts[#counts + 1] = #names_of
  end
  local version = redis.call('GET', KEYS[3]) or '0'
  return {version, redis.call('GET', KEYS[1]) or false, records(names), found, records(found), counts}
end
"""
)

#: A consistent read: {version, state, the named records, the waiting
#: names of each pair, their records, how many names each pair gave}.
#: ARGV: the number of names, the names, then per pair its field, its
#: earlier layout's prefix and its task (:func:`pair_args`).
READ = (
    LIB
    + """
local n = tonumber(ARGV[1])
local names, wanted = {}, {}
for i = 2, n + 1 do names[#names + 1] = ARGV[i] end
for i = n + 2, #ARGV do wanted[#wanted + 1] = ARGV[i] end
return read(names, wanted)
"""
)

#: Apply a transaction's writes if the session's version is the expected
#: one; else write nothing and return a fresh read of what the transaction
#: read, so that the re-run needs no separate read. KEYS: as LIB. ARGV:
#: the expected "<version>:<SHA-1 of the state>" (so a state changed
#: behind the version's back, by hand or by a restore, is noticed too), ttl
#: (0: none; -1: an instance is in flight, never expire), state text ("":
#: unchanged), the number of names to read on a conflict, those names, the
#: number of pairs to read, those pairs (three arguments each, as READ's),
#: the number of instance writes, name/text pairs, the number of waiting
#: lists changed and per list its field, the number of instance numbers
#: added, those, the number removed, those; then the earlier layout's
#: ``wait`` members to remove; then idempotency keys: key/value pairs and
#: their number, last (popped first). KEYS[6] is the hash of the session's
#: used keys. Returns {1}, {0, <what READ returns>}, or, when the version
#: held but a key is used already, {2, {key, value, ...}} (nothing written).
COMMIT = (
    LIB
    + """
local keyed = {}
for _ = 1, tonumber(table.remove(ARGV)) do
  local value = table.remove(ARGV); keyed[#keyed + 1] = table.remove(ARGV); keyed[#keyed + 1] = value
end
local i = 5
local names, wanted = {}, {}
for _ = 1, tonumber(ARGV[4]) do names[#names + 1] = ARGV[i]; i = i + 1 end
local np = tonumber(ARGV[i]); i = i + 1
for _ = 1, 3 * np do wanted[#wanted + 1] = ARGV[i]; i = i + 1 end
local current = redis.call('GET', KEYS[1])
local seen = (redis.call('GET', KEYS[3]) or '0') .. ':' .. (current and redis.sha1hex(current) or '')
if seen ~= ARGV[1] then
  local r = read(names, wanted)
  return {0, r[1], r[2], r[3], r[4], r[5], r[6]}
end
local used = {}
for k = 1, #keyed, 2 do
  local prior = redis.call('HGET', KEYS[6], keyed[k])
  if prior then used[#used + 1] = keyed[k]; used[#used + 1] = prior end
end
if #used > 0 then return {2, used} end
for k = 1, #keyed, 2 do redis.call('HSET', KEYS[6], keyed[k], keyed[k + 1]) end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3]) end
local nw = tonumber(ARGV[i]); i = i + 1
for _ = 1, nw do write(ARGV[i], ARGV[i + 1]); i = i + 2 end
flush()
local nl = tonumber(ARGV[i]); i = i + 1
for _ = 1, nl do
  local field, adds, removes = ARGV[i], {}, {}
  i = i + 1
  for _ = 1, tonumber(ARGV[i]) do i = i + 1; adds[#adds + 1] = ARGV[i] end
  i = i + 1
  for _ = 1, tonumber(ARGV[i]) do i = i + 1; removes[#removes + 1] = ARGV[i] end
  i = i + 1
  relist(field, adds, removes)
end
for j = i, #ARGV, 500 do redis.call('ZREM', WAIT, unpack(ARGV, j, math.min(j + 499, #ARGV))) end
redis.call('INCR', KEYS[3])
local ttl = tonumber(ARGV[2])
if ttl > 0 then for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
elseif ttl < 0 then for _, key in ipairs(KEYS) do redis.call('PERSIST', key) end end
return {1}
"""
)


#: The worker's start in one round trip (see ``RedisStorage.start``): any
#: of a scheduled instance's tokens (its task id, and the earlier ones in
#: ``o``) may start it, and the one that did becomes its only token.
#: KEYS: as LIB. ARGV: instance name, token, track ("1"/"0"), start time
#: (integer ms), the start's other fields as a JSON fragment
#: (",\"h\":..."), ttl (0: none), the token as a compact task id ("": it
#: is not a UUID, see ``records``). Returns {code, version, state,
#: record[, status before]}: 1 started; 0 not startable here (Python says
#: why, from the record), or nothing to write (track "0"); 2 a record in
#: another layout (use the generic path). The record ends with its status
#: field (see ``records``): the script replaces that with the start's
#: fields and the new status, never re-encoding the rest (cjson would
#: round numbers). A creation time relative to the session's start (``C``)
#: is read with the state's ``base``, its first field (keys are sorted).
START = (
    LIB
    + """
local rec = record(ARGV[1], redis.call('HGET', INST, ARGV[1]))
local state = redis.call('GET', KEYS[1]) or false
local version = redis.call('GET', KEYS[3]) or '0'
if not rec then return {0, version, state, false} end
local d = cjson.decode(rec)
if d.s ~= 'scheduled' and d.s ~= 'running' then return {d.task and 2 or 0, version, state, rec} end
local token, compact = ARGV[2], ARGV[7]
local others = (d.s == 'scheduled' and type(d.o) == 'table') and d.o or {}
local current
if type(d.I) == 'string' then current = compact ~= '' and d.I == compact else current = d.i == token end
local ok = current
for _, t in ipairs(others) do if t == token then ok = true end end
if not ok or ARGV[3] ~= '1' then return {0, version, state, rec} end
local suffix = '"s":"' .. d.s .. '"}'
if d.task or string.sub(rec, -#suffix) ~= suffix then return {2, version, state, rec} end
local owner = ''
if not current or #others > 0 then
  if compact ~= '' then owner = ',"I":"' .. compact .. '","o":[]'
  else owner = ',"I":null,"i":' .. cjson.encode(token) .. ',"o":[]' end
end
local created = tonumber(d.c) or 0
if d.C ~= nil then  -- relative to the session's start: the state's first field
  local base = tonumber(string.match(state or '', '^{"base":(%-?%d+)[,}]'))
  if not base or type(d.C) ~= 'number' then return {2, version, state, rec} end
  created = base + d.C
end
local started = tonumber(ARGV[4]) - created
local new = string.sub(rec, 1, #rec - #suffix) .. '"b":' .. string.format('%d', started)
  .. ',"n":' .. string.format('%d', (tonumber(d.n) or 0) + 1) .. owner .. ARGV[5] .. ',"s":"running"}'
write(ARGV[1], new)
flush()
local v = redis.call('INCR', KEYS[3])
if tonumber(ARGV[6]) ~= 0 then for _, key in ipairs(KEYS) do redis.call('PERSIST', key) end end
return {1, tostring(v), state, new, d.s}
"""
)


#: Delete a session if nothing is in flight and its last change is older
#: than ARGV[1] (a time), unless ARGV[2] is "1" (a dry run). KEYS: every
#: key of the session, the state first. Returns 1 if it is (or would be)
#: deleted.
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
