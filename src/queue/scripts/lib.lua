-- lib: helpers put in front of every queue script (scripts.rs joins this file and the script).
-- Redis does not roll back a script that fails halfway, so a script reads and checks everything it
-- is about to move before it moves anything: a key of the wrong type is set aside, a malformed job
-- record is dead-lettered with its reason, and neither is left half-moved nor dropped.
-- Nothing here takes KEYS or ARGV of its own; every key is one the calling script was given or
-- built from one of its key prefixes (all inside the queue's `{queue}` hash tag).

local CW_PRIORITIES = { critical = true, high = true, normal = true, low = true }
local CW_STATUSES = { pending = true, running = true, retrying = true, completed = true,
  failed = true, cancelled = true }
-- Statuses whose job still moves through the queue: its record must be complete.
local CW_ACTIVE = { pending = true, running = true, retrying = true }
local CW_FIELDS = { 'payload', 'status', 'priority', 'fence', 'attempt', 'max_attempts',
  'enqueued_at', 'run_at', 'cancel', 'owner', 'user' }

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
-- inspection: nothing is deleted) so the caller goes on with an empty one. Returns true when the
-- key was fine, false when it was set aside.
local function cw_want(key, want, now)
  local t = cw_type(key)
  if t == 'none' or t == want then return true end
  local dst = cw_aside_name(key, now)
  redis.call('RENAME', key, dst)
  redis.log(redis.LOG_WARNING, 'chatter-worker: ' .. key .. ' was a ' .. t .. ', not a ' .. want
    .. '; kept as ' .. dst)
  return false
end

local function cw_shown(v)
  v = tostring(v)
  if #v > 64 then v = string.sub(v, 1, 64) .. '...' end
  return "'" .. v .. "'"
end

local function cw_count(v)
  return v == nil or string.match(v, '^%d+$') ~= nil
end

-- Read a job record. Returns the record's fields (a table; absent fields are nil) or nil and
-- why not: 'missing' when there is no record, otherwise what is malformed, naming the field and
-- its value. A record whose job still moves (pending, running, retrying) needs its payload, a
-- known priority and whole-number counters; a finished one only a known status.
local function cw_read(jk)
  local t = cw_type(jk)
  if t == 'none' then return nil, 'missing' end
  if t ~= 'hash' then return nil, 'job record is a ' .. t .. ', not a hash' end
  local v = redis.call('HMGET', jk, unpack(CW_FIELDS))
  local r = {}
  for i, f in ipairs(CW_FIELDS) do
    if v[i] then r[f] = v[i] end
  end
  if r.status == nil then return nil, 'job record has no status' end
  if not CW_STATUSES[r.status] then return nil, 'status ' .. cw_shown(r.status) .. ' is not a job status' end
  if not CW_ACTIVE[r.status] then return r end
  if r.payload == nil then return nil, 'job record has no payload' end
  if r.priority == nil then return nil, 'job record has no priority' end
  if not CW_PRIORITIES[r.priority] then
    return nil, 'priority ' .. cw_shown(r.priority) .. ' is not one of critical, high, normal, low'
  end
  for _, f in ipairs({ 'fence', 'attempt', 'max_attempts' }) do
    if not cw_count(r[f]) then return nil, f .. ' ' .. cw_shown(r[f]) .. ' is not a whole number' end
  end
  return r
end

-- Append one attempt's entry (a JSON object) to a record's history (a JSON array). A history that
-- is not an array is kept in `history_unreadable` and a new one is started.
local function cw_append_history(jk, entry)
  local h = redis.call('HGET', jk, 'history')
  if not h or h == '' then
    h = '[' .. entry .. ']'
  elseif string.sub(h, 1, 1) == '[' and string.sub(h, -1) == ']' and #h > 2 then
    h = string.sub(h, 1, -2) .. ',' .. entry .. ']'
  elseif h == '[]' then
    h = '[' .. entry .. ']'
  else
    redis.call('HSET', jk, 'history_unreadable', h)
    h = '[' .. entry .. ']'
  end
  redis.call('HSET', jk, 'history', h)
end

-- Dead-letter a malformed record with its reason (`dead` is the queue's dead ZSET). A hash keeps
-- its fields; a string becomes the payload of a new record in its place; any other type is set
-- aside (see cw_want) and the new record names where. Nothing is deleted.
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
    redis.call('HSET', jk, 'payload', payload, 'fence', 0, 'attempt', 0, 'max_attempts', 1,
      'enqueued_at', now, 'run_at', 0)
  end
  -- Fields no script could use are kept under `<field>_unreadable` and reset, so a replay of the
  -- dead letter runs it (or dead-letters it again for what is still wrong, e.g. no payload).
  local f = redis.call('HMGET', jk, 'priority', 'fence', 'attempt', 'max_attempts')
  if not f[1] or not CW_PRIORITIES[f[1]] then
    if f[1] then redis.call('HSET', jk, 'priority_unreadable', f[1]) end
    redis.call('HSET', jk, 'priority', 'normal')
  end
  local resets = { fence = 0, attempt = 0, max_attempts = 1 }
  for i, name in ipairs({ 'fence', 'attempt', 'max_attempts' }) do
    local v = f[i + 1] or nil
    if not cw_count(v) then
      redis.call('HSET', jk, name .. '_unreadable', v, name, resets[name])
    end
  end
  redis.call('HSET', jk, 'status', 'failed', 'completed_at', now,
    'error', 'malformed job record: ' .. reason)
  redis.call('ZADD', dead, now, id)
end

-- Redis's clock, ms.
local function cw_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

