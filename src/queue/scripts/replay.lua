-- replay: move dead-lettered jobs back to ready with a fresh attempt count.
-- KEYS[1] dead ZSET   KEYS[2] job key prefix   KEYS[3] ready key prefix   KEYS[4] notify LIST
-- ARGV[1] job id ('' = the oldest ARGV[2] dead jobs)   ARGV[2] limit
-- Returns the number of jobs replayed.
local ids
if ARGV[1] ~= '' then ids = { ARGV[1] } else ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local jk = KEYS[2] .. id
    local prio = redis.call('HGET', jk, 'priority')
    if prio then
      redis.call('HSET', jk, 'status', 'pending', 'attempt', 0, 'error', '')
      redis.call('HDEL', jk, 'cancel', 'completed_at')
      redis.call('RPUSH', KEYS[3] .. prio, id)
      n = n + 1
    end
  end
end
if n > 0 and redis.call('LLEN', KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], '1') end
return n
