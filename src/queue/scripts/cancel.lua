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
  cw_bury(jk, id, why, KEYS[7], now)
  return 'finished:failed'
end
if r.status == 'pending' or r.status == 'retrying' then
  local list = KEYS[2] .. r.priority
  cw_call(list, 'list', now, 'LREM', list, 1, id)
  cw_call(KEYS[3], 'zset', now, 'ZREM', KEYS[3], id)
  cw_call(KEYS[4], 'zset', now, 'ZREM', KEYS[4], id)
  redis.call('HSET', jk, 'status', 'cancelled', 'completed_at', now, 'error', 'cancelled')
  if tonumber(ARGV[4]) == 0 then
    redis.call('DEL', jk)
    if r.user then
      local idx = KEYS[6] .. r.user
      cw_call(idx, 'zset', now, 'ZREM', idx, id)
    end
  else
    cw_call(KEYS[5], 'zset', now, 'ZADD', KEYS[5], now, id)
  end
  return 'cancelled'
elseif r.status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], id)
  return 'cancelling'
end
return 'finished:' .. r.status
