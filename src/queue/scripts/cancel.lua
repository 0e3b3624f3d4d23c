-- cancel: cancel a pending, scheduled or retrying job at once; flag a running one and signal it.
-- KEYS[1] job key prefix  KEYS[2] ready key prefix  KEYS[3] scheduled ZSET  KEYS[4] retry ZSET
-- KEYS[5] done ZSET      KEYS[6] owner index prefix
-- ARGV[1] now ms   ARGV[2] job id   ARGV[3] cancel pub/sub channel   ARGV[4] retention ms
-- Returns 'cancelled' | 'cancelling' (running: its worker trips the job's token) | 'missing' |
--   'finished:<status>' when it already ended (completed, failed, cancelled).
local id = ARGV[2]
local jk = KEYS[1] .. id
local s = redis.call('HMGET', jk, 'status', 'priority')
if not s[1] then return 'missing' end
if s[1] == 'pending' or s[1] == 'retrying' then
  redis.call('LREM', KEYS[2] .. s[2], 1, id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HSET', jk, 'status', 'cancelled', 'completed_at', ARGV[1], 'error', 'cancelled')
  if tonumber(ARGV[4]) == 0 then
    local user = redis.call('HGET', jk, 'user')
    redis.call('DEL', jk)
    if user then redis.call('ZREM', KEYS[6] .. user, id) end
  else
    redis.call('ZADD', KEYS[5], ARGV[1], id)
  end
  return 'cancelled'
elseif s[1] == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], id)
  return 'cancelling'
end
return 'finished:' .. s[1]
