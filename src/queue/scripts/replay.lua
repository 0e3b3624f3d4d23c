-- replay: move dead-lettered jobs back to ready with a fresh attempt count.
-- KEYS[1] dead ZSET   KEYS[2] job key prefix   KEYS[3] ready key prefix   KEYS[4] notify LIST
-- ARGV[1] job id ('' = the oldest ARGV[2] dead jobs)   ARGV[2] limit
-- Returns the number of jobs replayed. An unusable priority is replayed at normal; a dead letter
--   that cannot run (not a hash, no payload) stays dead, says why, and is not counted; an entry
--   whose record is not `failed` is left alone.
local now = cw_now()
local ids
if ARGV[1] ~= '' then ids = { ARGV[1] }
else ids = cw_call(KEYS[1], 'zset', now, 'ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
local n = 0
for _, id in ipairs(ids) do
  local jk = KEYS[2] .. id
  local t = cw_type(jk)
  -- Only a failed record in the dead set runs again; one that cannot run (not a hash, no
  -- payload) stays dead and its error says why.
  if cw_call(KEYS[1], 'zset', now, 'ZSCORE', KEYS[1], id) then
    if t ~= 'hash' and t ~= 'none' then
      cw_bury(jk, id, 'job record is a ' .. t .. ', not a hash', KEYS[1], now)
    elseif t == 'hash' and redis.call('HEXISTS', jk, 'payload') == 0 then
      cw_bury(jk, id, 'job record has no payload', KEYS[1], now)
    elseif t == 'hash' and redis.call('HGET', jk, 'status') == 'failed' then
      redis.call('ZREM', KEYS[1], id)
      local f = redis.call('HMGET', jk, 'priority', 'fence', 'max_attempts')
      local prio = f[1]
      if not prio or not CW_PRIORITIES[prio] then
        prio = 'normal'
        redis.call('HSET', jk, 'priority', prio)
      end
      -- A fence only ever moves forward (a reset could let an old holder's finish through).
      if not cw_count(f[2] or nil) then redis.call('HSET', jk, 'fence', now) end
      if not cw_count(f[3] or nil) then redis.call('HSET', jk, 'max_attempts', 1) end
      redis.call('HSET', jk, 'status', 'pending', 'attempt', 0, 'error', '')
      redis.call('HDEL', jk, 'cancel', 'completed_at')
      local list = KEYS[3] .. prio
      cw_call(list, 'list', now, 'RPUSH', list, id)
      n = n + 1
    end
  end
end
if n > 0 and cw_call(KEYS[4], 'list', now, 'LLEN', KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], '1') end
return n
