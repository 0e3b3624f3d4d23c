-- rescue: hand back jobs whose lease expired (their worker died or hung). Safe in every process:
-- each expired lease is removed and handled in this one atomic step, by whichever process gets it.
-- KEYS[1] leases ZSET  KEYS[2] job key prefix  KEYS[3] ready key prefix  KEYS[4] dead ZSET
-- KEYS[5] done ZSET    KEYS[6] notify LIST   KEYS[7] owner index prefix
-- ARGV[1] at most this many leases   ARGV[2] finished-record retention ms
-- Expiry is judged on Redis's clock (TIME), the one leases were set with.
-- Returns {requeued, dead, cancelled}; a malformed record is dead-lettered with its reason and
--   counted dead. The attempt was counted when the job was claimed; the fence
--   is bumped so the silent holder's late finish is refused.
local now = cw_now()
local retention = tonumber(ARGV[2])
local requeued, dead, cancelled = 0, 0, 0
local ids = cw_call(KEYS[1], 'zset', now, 'ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,
  tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local jk = KEYS[2] .. id
  local r, why = cw_read(jk)
  if not r and why ~= 'missing' then
    cw_bury(jk, id, why, KEYS[4], now)
    dead = dead + 1
  elseif r and r.status == 'running' then
    local attempt = tonumber(r.attempt) or 0
    local owner = r.owner or '?'
    local err = 'lease expired: worker ' .. owner .. ' stopped heartbeating'
    redis.call('HINCRBY', jk, 'fence', 1)
    cw_append_history(jk, cjson.encode({ attempt = attempt, error = err, at = now, worker = owner }))
    if r.cancel == '1' then
      redis.call('HSET', jk, 'status', 'cancelled', 'completed_at', now, 'error', 'cancelled')
      if retention == 0 then
        redis.call('DEL', jk)
        if r.user then
          local idx = KEYS[7] .. r.user
          cw_call(idx, 'zset', now, 'ZREM', idx, id)
        end
      else
        cw_call(KEYS[5], 'zset', now, 'ZADD', KEYS[5], now, id)
      end
      cancelled = cancelled + 1
    elseif attempt >= (tonumber(r.max_attempts) or 1) then
      redis.call('HSET', jk, 'status', 'failed', 'completed_at', now,
        'error', err .. ' (attempt ' .. attempt .. ' of ' .. tostring(r.max_attempts or 1) .. ')')
      cw_call(KEYS[4], 'zset', now, 'ZADD', KEYS[4], now, id)
      dead = dead + 1
    else
      -- To the front: the job already waited its turn once.
      redis.call('HSET', jk, 'status', 'pending')
      local list = KEYS[3] .. r.priority
      cw_call(list, 'list', now, 'LPUSH', list, id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 and cw_call(KEYS[6], 'list', now, 'LLEN', KEYS[6]) == 0 then
  redis.call('RPUSH', KEYS[6], '1')
end
return { requeued, dead, cancelled }
