-- finish: record how claimed jobs ended, refusing any entry whose fence is no longer current.
-- KEYS[1] job key prefix  KEYS[2] leases ZSET  KEYS[3] done ZSET  KEYS[4] dead ZSET
-- KEYS[5] retry ZSET      KEYS[6] scheduled ZSET  KEYS[7] ready key prefix  KEYS[8] notify LIST
-- KEYS[9] owner index prefix
-- ARGV[1] now ms   ARGV[2] finished-record retention ms (0 = delete at once; otherwise the
--   retention loop deletes the record once it is older, see trim.lua)
-- ARGV[3..] six values per job (at most 500 jobs per call): id, fence, action, a, b, c
--   completed  a = result JSON ('' = none)
--   retry      a = error, b = attempt-history entry (JSON object), c = run-at ms
--   dead       a = error, b = attempt-history entry
--   cancelled  a = reason
--   snooze     c = run-at ms (the attempt is not counted)
--   requeue    handed back unfinished at shutdown (the attempt is not counted)
--   (retry, snooze and requeue become cancelled when a cancel was requested)
-- Returns {applied, stale, stale ids}: stale entries (fence moved on, or job no longer running)
--   change nothing. An entry whose record turned out malformed is dead-lettered with the reason
--   (and counted stale: its holder's outcome was not applied).
local now = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local applied, stale = 0, 0
local stale_ids = {}
local pushed = false

-- Lease removals and done entries are collected and written once per call.
local unleased, done = {}, {}
local function finished(jk, id, user)
  if retention > 0 then
    done[#done + 1] = now
    done[#done + 1] = id
  else
    redis.call('DEL', jk)
    if user then
      local idx = KEYS[9] .. user
      cw_call(idx, 'zset', now, 'ZREM', idx, id)
    end
  end
end

local actions = { completed = true, retry = true, dead = true, cancelled = true, snooze = true,
  requeue = true }
for i = 3, #ARGV, 6 do
  if not actions[ARGV[i + 2]] then
    return redis.error_reply('finish: unknown action ' .. ARGV[i + 2] .. ' for job ' .. ARGV[i])
  end
end

for i = 3, #ARGV, 6 do
  local id, fence, action = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local a, b, c = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local jk = KEYS[1] .. id
  -- The fence is only compared; the attempt is checked where it is counted back (below).
  local r = redis.pcall('HMGET', jk, 'status', 'priority', 'fence', 'attempt', 'cancel', 'user')
  local why = cw_why(jk, r, 0)
  if not why and r[1] == 'running' and r[3] == fence
      and (action == 'snooze' or action == 'requeue') and not cw_count(r[4] or nil) then
    why = 'attempt ' .. cw_shown(r[4]) .. ' is not a whole number'
  end
  if why and why ~= 'missing' then
    cw_bury(jk, id, why, KEYS[4], now)
    unleased[#unleased + 1] = id
    stale = stale + 1
    stale_ids[#stale_ids + 1] = id
  elseif why or r[3] ~= fence or r[1] ~= 'running' then
    stale = stale + 1
    stale_ids[#stale_ids + 1] = id
  else
    applied = applied + 1
    unleased[#unleased + 1] = id
    -- A cancel requested while it ran wins over running it again.
    if r[5] == '1' and (action == 'retry' or action == 'snooze' or action == 'requeue') then
      action, a = 'cancelled', 'cancelled'
    end
    if action == 'completed' then
      if a ~= '' then
        redis.call('HSET', jk, 'status', 'completed', 'completed_at', now, 'result', a)
      else
        redis.call('HSET', jk, 'status', 'completed', 'completed_at', now)
      end
      finished(jk, id, r[6] or nil)
    elseif action == 'retry' then
      redis.call('HSET', jk, 'status', 'retrying', 'error', a)
      cw_append_history(jk, b)
      cw_call(KEYS[5], 'zset', now, 'ZADD', KEYS[5], tonumber(c) or now, id)
      pushed = true
    elseif action == 'dead' then
      redis.call('HSET', jk, 'status', 'failed', 'error', a, 'completed_at', now)
      cw_append_history(jk, b)
      cw_call(KEYS[4], 'zset', now, 'ZADD', KEYS[4], now, id)
    elseif action == 'cancelled' then
      redis.call('HSET', jk, 'status', 'cancelled', 'error', a, 'completed_at', now)
      finished(jk, id, r[6] or nil)
    elseif action == 'snooze' then
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HSET', jk, 'status', 'pending')
      cw_call(KEYS[6], 'zset', now, 'ZADD', KEYS[6], tonumber(c) or now, id)
      pushed = true
    else -- requeue
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HSET', jk, 'status', 'pending')
      local list = KEYS[7] .. r[2]
      cw_call(list, 'list', now, 'LPUSH', list, id)
      pushed = true
    end
  end
end
if #unleased > 0 then cw_call(KEYS[2], 'zset', now, 'ZREM', KEYS[2], unpack(unleased)) end
if #done > 0 then cw_call(KEYS[3], 'zset', now, 'ZADD', KEYS[3], unpack(done)) end
if pushed and cw_call(KEYS[8], 'list', now, 'LLEN', KEYS[8]) == 0 then
  redis.call('RPUSH', KEYS[8], '1')
end
return { applied, stale, stale_ids }
