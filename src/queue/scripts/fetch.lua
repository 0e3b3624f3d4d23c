-- fetch: claim up to N ready jobs for one worker, highest priority first, FIFO within a level.
-- KEYS[1] ready key prefix   KEYS[2] scheduled ZSET   KEYS[3] retry ZSET   KEYS[4] leases ZSET
-- KEYS[5] job key prefix     KEYS[6] paused flag      KEYS[7] notify LIST  KEYS[8] dead ZSET
-- ARGV[1] max jobs (<= 500)   ARGV[2] lease length ms   ARGV[3] worker name
-- ARGV[4] how many due scheduled / retrying jobs to promote per set in this call (bounded)
-- Time is Redis's own (TIME), so clock skew between workers cannot break leases.
-- Returns {paused 0|1, next due ms or -1 (only when nothing was claimed), orphans dead-lettered,
--   then five values per claimed job: id, payload, fence, attempt, due ms (enqueue or run-at)}
-- Each claim increments the job's fence; only the holder of the current fence may finish it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local worker = ARGV[3]
local plimit = tonumber(ARGV[4])
local prios = { 'critical', 'high', 'normal', 'low' }

local function next_due()
  local d = -1
  for _, set in ipairs({ KEYS[2], KEYS[3] }) do
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if first[2] and (d < 0 or tonumber(first[2]) < d) then d = tonumber(first[2]) end
  end
  return d
end

if redis.call('EXISTS', KEYS[6]) == 1 then
  return { 1, next_due(), 0 }
end

-- Promote due jobs in bounded steps (never an unbounded unpack).
for _, set in ipairs({ KEYS[2], KEYS[3] }) do
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, plimit)
  for _, id in ipairs(due) do
    redis.call('ZREM', set, id)
    local prio = redis.call('HGET', KEYS[5] .. id, 'priority')
    if prio then
      redis.call('HSET', KEYS[5] .. id, 'status', 'pending')
      redis.call('RPUSH', KEYS[1] .. prio, id)
    end
  end
end

local out = { 0, -1, 0 }
local orphans = 0
local leased = {}
for _, p in ipairs(prios) do
  if want <= 0 then break end
  local ids = redis.call('LPOP', KEYS[1] .. p, want)
  if ids then
    for _, id in ipairs(ids) do
      local jk = KEYS[5] .. id
      local f = redis.call('HMGET', jk, 'payload', 'enqueued_at', 'run_at', 'fence', 'attempt')
      if not f[1] then
        -- Not the id of a job record (a raw payload pushed by hand, say): keep it as a dead
        -- letter so nothing is lost, and go on with the jobs behind it.
        local oid = 'orphan-' .. redis.sha1hex(id)
        redis.call('HSET', KEYS[5] .. oid, 'payload', id, 'status', 'failed', 'priority', p,
          'fence', 0, 'attempt', 0, 'max_attempts', 1, 'enqueued_at', now, 'run_at', 0,
          'completed_at', now, 'error', 'ready list entry is not the id of a job record')
        redis.call('ZADD', KEYS[8], now, oid)
        orphans = orphans + 1
      else
        local fence = (tonumber(f[4]) or 0) + 1
        local attempt = (tonumber(f[5]) or 0) + 1
        redis.call('HSET', jk, 'status', 'running', 'owner', worker, 'started_at', now,
          'fence', fence, 'attempt', attempt)
        leased[#leased + 1] = deadline
        leased[#leased + 1] = id
        local due = math.max(tonumber(f[2]) or 0, tonumber(f[3]) or 0)
        out[#out + 1] = id
        out[#out + 1] = f[1]
        out[#out + 1] = fence
        out[#out + 1] = attempt
        out[#out + 1] = due
        want = want - 1
      end
    end
  end
end
if #leased > 0 then
  redis.call('ZADD', KEYS[4], unpack(leased))
  -- Work remains: pass a wake-up token on so another idle fetcher joins in.
  for _, p in ipairs(prios) do
    if redis.call('LLEN', KEYS[1] .. p) > 0 then
      if redis.call('LLEN', KEYS[7]) == 0 then redis.call('RPUSH', KEYS[7], '1') end
      break
    end
  end
else
  out[2] = next_due()
end
out[3] = orphans
return out
