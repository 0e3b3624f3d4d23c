-- lib: helpers put in front of every queue script (scripts.rs joins this file and the script).
-- Redis does not roll back a script that fails halfway, so no script may fail after its first
-- write: every command on a queue structure goes through cw_call, which sets a key of the wrong
-- type aside and runs the command again on an empty one (a WRONGTYPE reply changes nothing, so
-- the happy path costs no extra call), and every job record is read and checked (cw_read) before
-- it is moved: a malformed one is dead-lettered with its reason (cw_bury), never left half-moved
-- nor dropped. Nothing here takes KEYS or ARGV of its own; every key is one the calling script
-- was given or built from one of its key prefixes (all inside the queue's `{queue}` hash tag).

local CW_PRIORITIES = { critical = true, high = true, normal = true, low = true }
local CW_STATUSES = { pending = true, running = true, retrying = true, completed = true,
  failed = true, cancelled = true }
-- Statuses whose job still moves through the queue: its record must be complete.
local CW_ACTIVE = { pending = true, running = true, retrying = true }
-- Fields read of a record a script may move: status, priority and the counters come first, at
-- these positions, in every read (cw_why checks them); the hot paths read only what they use.
local CW_FIELDS = { 'status', 'priority', 'fence', 'attempt', 'max_attempts', 'enqueued_at',
  'run_at', 'cancel', 'owner', 'user' }
local function cw_type(key)
  return redis.call('TYPE', key)['ok']
end

-- Where a key of the wrong type is kept: `<p>:{q}:corrupt:<rest of the key>:<ms>[-n]`, outside
-- every pattern the queue reads (job:*, ready:*), so it is never taken for a job.
local function cw_aside_name(key, now)
  local i = string.find(key, '}:', 1, true)
  local base
  if i then base = string.sub(key, 1, i) .. ':corrupt:' .. string.sub(key, i + 2)
  else base = key .. ':corrupt' end
  local dst = base .. ':' .. now
  local n = 0
  while redis.call('EXISTS', dst) == 1 do
    n = n + 1
    dst = base .. ':' .. now .. '-' .. n
  end
  return dst
end

-- Make sure `key` is absent or of type `want`. A key of another type is renamed aside (kept for
-- inspection: nothing is deleted). Returns true when the key was fine.
local function cw_want(key, want, now)
  local t = cw_type(key)
  if t == 'none' or t == want then return true end
  local dst = cw_aside_name(key, now)
  redis.call('RENAME', key, dst)
  redis.log(redis.LOG_WARNING, 'chatter-worker: ' .. key .. ' was a ' .. t .. ', not a ' .. want
    .. '; kept as ' .. dst)
  return false
end

-- Run a command on queue structure `key` (of type `want`). On WRONGTYPE the key is set aside and
-- the command runs again; any other error is raised (it changed nothing either).
local function cw_call(key, want, now, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r['err'] then
    if string.find(r['err'], 'WRONGTYPE', 1, true) then
      cw_want(key, want, now)
      return redis.call(...)
    end
    error(r)
  end
  return r
end

local function cw_shown(v)
  v = tostring(v)
  if #v > 64 then v = string.sub(v, 1, 64) .. '...' end
  return "'" .. v .. "'"
end

-- A counter the scripts may add to: a whole number of at most 14 digits (exact in Lua's doubles,
-- written back by Redis's %.14g without an exponent, and far from HINCRBY's overflow).
local function cw_count(v)
  return v == nil or (#v > 0 and #v <= 14 and not string.find(v, '%D'))
end

-- Why a record is unusable, from its HMGET reply `v` (status, priority, then the first
-- `counters` (default 3) of fence, attempt, max_attempts at v[3] ..; a pcall reply, so an error
-- table means the key is not a hash):
-- 'missing' when there is no record, otherwise what is malformed, naming the field and its
-- value; nil when it is fine. A record whose job still moves (pending, running, retrying) needs
-- a known priority and whole-number counters; a finished one only a known status. Positional
-- on purpose: this runs for every job a fetch or finish touches.
local function cw_why(jk, v, counters)
  if v['err'] then return 'job record is a ' .. cw_type(jk) .. ', not a hash' end
  local status = v[1]
  if not status then
    if redis.call('EXISTS', jk) == 0 then return 'missing' end
    return 'job record has no status'
  end
  if not CW_ACTIVE[status] then
    if CW_STATUSES[status] then return nil end
    return 'status ' .. cw_shown(status) .. ' is not a job status'
  end
  if not v[2] then return 'job record has no priority' end
  if not CW_PRIORITIES[v[2]] then
    return 'priority ' .. cw_shown(v[2]) .. ' is not one of critical, high, normal, low'
  end
  for i = 1, counters or 3 do
    local c = v[i + 2] or nil
    if not cw_count(c) then
      return CW_FIELDS[i + 2] .. ' ' .. cw_shown(c) .. ' is not a whole number'
    end
  end
  return nil
end

-- Read a whole job record (CW_FIELDS) into a table, or nil and why not (see cw_why); with
-- `payload` = 'check' a moving record must also have its payload.
local function cw_read(jk, payload)
  local v = redis.pcall('HMGET', jk, unpack(CW_FIELDS))
  local why = cw_why(jk, v)
  if why then return nil, why end
  if payload == 'check' and CW_ACTIVE[v[1]] and redis.call('HEXISTS', jk, 'payload') == 0 then
    return nil, 'job record has no payload'
  end
  local r = {}
  for i = 1, #CW_FIELDS do
    if v[i] then r[CW_FIELDS[i]] = v[i] end
  end
  return r
end

-- Append one attempt's entry (a JSON object) to a record's history (a JSON array). A history that
-- is not an array is kept in `history_unreadable` and a new one is started.
local function cw_append_history(jk, entry)
  local h = redis.call('HGET', jk, 'history')
  if not h or h == '' or h == '[]' then
    h = '[' .. entry .. ']'
  elseif string.sub(h, 1, 1) == '[' and string.sub(h, -1) == ']' then
    h = string.sub(h, 1, -2) .. ',' .. entry .. ']'
  else
    redis.call('HSET', jk, 'history_unreadable', h)
    h = '[' .. entry .. ']'
  end
  redis.call('HSET', jk, 'history', h)
end

-- Dead-letter a malformed record with its reason (`dead` is the queue's dead ZSET). A hash keeps
-- its fields; a string becomes the payload of a new record in its place; any other type is set
-- aside (see cw_want) and the new record names where. Nothing is deleted. The fence moves past
-- any value handed out (to now, in ms, when that is higher), so a worker still running the job
-- is told it lost it and its late finish is refused.
local function cw_bury(jk, id, reason, dead, now)
  local t = cw_type(jk)
  if t ~= 'hash' then
    local payload = ''
    if t == 'string' then
      payload = redis.call('GET', jk)
      redis.call('DEL', jk)
    elseif t ~= 'none' then
      local dst = cw_aside_name(jk, now)
      redis.call('RENAME', jk, dst)
      reason = reason .. ' (its content is kept as ' .. dst .. ')'
    end
    redis.call('HSET', jk, 'payload', payload, 'attempt', 0, 'max_attempts', 1,
      'enqueued_at', now, 'run_at', 0)
  end
  -- Fields no script could use are kept under `<field>_unreadable` and reset, so a replay of the
  -- dead letter runs it (or dead-letters it again for what is still wrong, e.g. no payload).
  local f = redis.call('HMGET', jk, 'priority', 'fence', 'attempt', 'max_attempts')
  if not f[1] or not CW_PRIORITIES[f[1]] then
    if f[1] then redis.call('HSET', jk, 'priority_unreadable', f[1]) end
    redis.call('HSET', jk, 'priority', 'normal')
  end
  local resets = { attempt = 0, max_attempts = 1 }
  for i, name in ipairs({ 'attempt', 'max_attempts' }) do
    local v = f[i + 2] or nil
    if not cw_count(v) then
      redis.call('HSET', jk, name .. '_unreadable', v, name, resets[name])
    end
  end
  local fence = now
  if f[2] and cw_count(f[2]) and tonumber(f[2]) >= now then fence = tonumber(f[2]) + 1 end
  if f[2] and not cw_count(f[2]) then redis.call('HSET', jk, 'fence_unreadable', f[2]) end
  redis.call('HSET', jk, 'fence', fence, 'status', 'failed', 'completed_at', now,
    'error', 'malformed job record: ' .. reason)
  cw_call(dead, 'zset', now, 'ZADD', dead, now, id)
end

-- Redis's clock, ms.
local function cw_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

