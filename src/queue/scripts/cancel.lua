-- cancel: cancel a pending, scheduled or retrying job at once; flag a running one and signal it.
-- KEYS[1] job key prefix  KEYS[2] ready key prefix  KEYS[3] scheduled ZSET  KEYS[4] retry ZSET
-- KEYS[5] done ZSET      KEYS[6] owner index prefix   KEYS[7] dead ZSET
-- ARGV[1] now ms   ARGV[2] job id   ARGV[3] cancel pub/sub channel   ARGV[4] retention ms
-- Returns 'cancelled' | 'cancelling' (running: its worker trips the job's token) | 'missing' |
--   'finished:<status>' when it already ended (completed, failed, cancelled). A malformed record
--   is dead-lettered with its reason ('finished:failed').
local now = tonumber(ARGV[1])
local id = ARGV[2]
local jk = KEYS[1] .. id
local r, why = cw_read(jk)
if why == 'missing' then return 'missing' end
if not r then
  -- Nothing could run it as it is: dead-letter it with the reason rather than half-cancel it.
  cw_want(KEYS[7], 'zset', now)
  cw_bury(jk, id, why, KEYS[7], now)
  return 'finished:failed'
end
if r.status == 'pending' or r.status == 'retrying' then
  cw_want(KEYS[2] .. r.priority, 'list', now)
  cw_want(KEYS[3], 'zset', now)
  cw_want(KEYS[4], 'zset', now)
  cw_want(KEYS[5], 'zset', now)
  redis.call('LREM', KEYS[2] .. r.priority, 1, id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HSET', jk, 'status', 'cancelled', 'completed_at', now, 'error', 'cancelled')
  if tonumber(ARGV[4]) == 0 then
    redis.call('DEL', jk)
    if r.user then
      cw_want(KEYS[6] .. r.user, 'zset', now)
      redis.call('ZREM', KEYS[6] .. r.user, id)
    end
  else
    redis.call('ZADD', KEYS[5], now, id)
  end
  return 'cancelled'
elseif r.status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], id)
  return 'cancelling'
end
return 'finished:' .. r.status
