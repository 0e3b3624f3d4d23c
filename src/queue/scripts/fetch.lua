-- fetch: claim up to N ready jobs for one worker, highest priority first, FIFO within a level.
-- KEYS[1] ready key prefix   KEYS[2] scheduled ZSET   KEYS[3] retry ZSET   KEYS[4] leases ZSET
-- KEYS[5] job key prefix     KEYS[6] paused flag      KEYS[7] notify LIST  KEYS[8] dead ZSET
-- ARGV[1] max jobs (<= 500)   ARGV[2] lease length ms   ARGV[3] worker name
-- ARGV[4] how many due scheduled / retrying jobs to promote per set in this call (bounded)
-- Time is Redis's own (TIME), so clock skew between workers cannot break leases.
-- Returns {paused 0|1, next due ms or -1 (only when nothing was claimed), records dead-lettered
--   (ready entries that name no record, malformed records), then five values per claimed job:
--   id, payload, fence, attempt, due ms (enqueue or run-at)}
-- Each claim increments the job's fence; only the holder of the current fence may finish it.
-- A ready entry whose job is not pending (a duplicate entry of a job already claimed or ended) is
-- dropped: the job is tracked where its status says, and running it again would run it twice.
local now = cw_now()
local want = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local worker = ARGV[3]
local plimit = tonumber(ARGV[4])
local prios = { 'critical', 'high', 'normal', 'low' }

local function next_due()
  local d = -1
  for _, set in ipairs({ KEYS[2], KEYS[3] }) do
    local first = cw_call(set, 'zset', now, 'ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] and (d < 0 or tonumber(first[2]) < d) then d = tonumber(first[2]) end
  end
  return d
end

if redis.call('EXISTS', KEYS[6]) == 1 then
  return { 1, next_due(), 0 }
end

local buried = 0
-- Promote due jobs in bounded steps (never an unbounded unpack).
for _, set in ipairs({ KEYS[2], KEYS[3] }) do
  local due = cw_call(set, 'zset', now, 'ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, plimit)
  for _, id in ipairs(due) do
    redis.call('ZREM', set, id)
    local jk = KEYS[5] .. id
    local r, why = cw_read(jk)
    if r then
      if r.status == 'pending' or r.status == 'retrying' then
        redis.call('HSET', jk, 'status', 'pending')
        local list = KEYS[1] .. r.priority
        cw_call(list, 'list', now, 'RPUSH', list, id)
      end
    elseif why ~= 'missing' then
      cw_bury(jk, id, why, KEYS[8], now)
      buried = buried + 1
    end
  end
end

local out = { 0, -1, 0 }
local leased = {}
for _, p in ipairs(prios) do
  if want <= 0 then break end
  local list = KEYS[1] .. p
  local ids = cw_call(list, 'list', now, 'LPOP', list, want)
  if ids then
    for _, id in ipairs(ids) do
      local jk = KEYS[5] .. id
      -- Counters it adds to are checked (fence, attempt); max_attempts is the rescuer's.
      local v = redis.pcall('HMGET', jk, 'status', 'priority', 'fence', 'attempt', 'payload',
        'enqueued_at', 'run_at')
      local why = cw_why(jk, v, 2)
      if not why and v[1] == 'pending' and not v[5] then why = 'job record has no payload' end
      if why == 'missing' then
        -- Not the id of a job record (a raw payload pushed by hand, say): keep it as a dead
        -- letter so nothing is lost, and go on with the jobs behind it.
        local oid = 'orphan-' .. redis.sha1hex(id)
        if redis.call('EXISTS', KEYS[5] .. oid) == 1 then oid = oid .. '-' .. now end
        redis.call('HSET', KEYS[5] .. oid, 'payload', id, 'status', 'failed', 'priority', p,
          'fence', 0, 'attempt', 0, 'max_attempts', 1, 'enqueued_at', now, 'run_at', 0,
          'completed_at', now, 'error', 'ready list entry is not the id of a job record')
        cw_call(KEYS[8], 'zset', now, 'ZADD', KEYS[8], now, oid)
        buried = buried + 1
      elseif why then
        cw_bury(jk, id, why, KEYS[8], now)
        buried = buried + 1
      elseif v[1] == 'pending' then
        local fence = (tonumber(v[3]) or 0) + 1
        local attempt = (tonumber(v[4]) or 0) + 1
        redis.call('HSET', jk, 'status', 'running', 'owner', worker, 'started_at', now,
          'fence', fence, 'attempt', attempt)
        leased[#leased + 1] = deadline
        leased[#leased + 1] = id
        local due = math.max(tonumber(v[6]) or 0, tonumber(v[7]) or 0)
        out[#out + 1] = id
        out[#out + 1] = v[5]
        out[#out + 1] = fence
        out[#out + 1] = attempt
        out[#out + 1] = due
        want = want - 1
      end
    end
  end
end
if #leased > 0 then
  cw_call(KEYS[4], 'zset', now, 'ZADD', KEYS[4], unpack(leased))
  -- Work remains: pass a wake-up token on so another idle fetcher joins in.
  for _, p in ipairs(prios) do
    local list = KEYS[1] .. p
    if cw_call(list, 'list', now, 'LLEN', list) > 0 then
      if cw_call(KEYS[7], 'list', now, 'LLEN', KEYS[7]) == 0 then redis.call('RPUSH', KEYS[7], '1') end
      break
    end
  end
else
  out[2] = next_due()
end
out[3] = buried
return out
