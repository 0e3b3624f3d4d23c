-- replay: move dead-lettered jobs back to ready with a fresh attempt count.
-- KEYS[1] dead ZSET   KEYS[2] job key prefix   KEYS[3] ready key prefix   KEYS[4] notify LIST
-- ARGV[1] job id ('' = the oldest ARGV[2] dead jobs)   ARGV[2] limit
-- Returns the number of jobs replayed. An unusable priority is replayed at normal; a dead letter
--   that cannot run (not a hash, no payload) stays dead and is not counted.
local now = cw_now()
cw_want(KEYS[1], 'zset', now)
cw_want(KEYS[4], 'list', now)
local ids
if ARGV[1] ~= '' then ids = { ARGV[1] } else ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
local n = 0
for _, id in ipairs(ids) do
  local jk = KEYS[2] .. id
  -- Only a dead letter that can run leaves the dead set: a record that is not a hash, or has no
  -- payload, stays dead and its error says why.
  local t = cw_type(jk)
  if t ~= 'hash' and t ~= 'none' and redis.call('ZSCORE', KEYS[1], id) then
    -- A dead letter that is not a record (overwritten by hand): make it one that says so.
    cw_bury(jk, id, 'job record is a ' .. t .. ', not a hash', KEYS[1], now)
  elseif t == 'hash' and redis.call('ZSCORE', KEYS[1], id)
      and redis.call('HEXISTS', jk, 'payload') == 0 then
    cw_bury(jk, id, 'job record has no payload', KEYS[1], now)
  elseif t == 'hash' and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZREM', KEYS[1], id)
    local prio = redis.call('HGET', jk, 'priority')
    if not prio or not CW_PRIORITIES[prio] then
      prio = 'normal'
      redis.call('HSET', jk, 'priority', prio)
    end
    for _, f in ipairs({ 'fence', 'max_attempts' }) do
      if not cw_count(redis.call('HGET', jk, f) or nil) then redis.call('HDEL', jk, f) end
    end
    redis.call('HSET', jk, 'status', 'pending', 'attempt', 0, 'error', '')
    redis.call('HDEL', jk, 'cancel', 'completed_at')
    cw_want(KEYS[3] .. prio, 'list', now)
    redis.call('RPUSH', KEYS[3] .. prio, id)
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], '1') end
return n
