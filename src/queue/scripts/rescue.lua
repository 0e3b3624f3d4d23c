-- rescue: hand back jobs whose lease expired (their worker died or hung). Safe in every process:
-- each expired lease is removed and handled in this one atomic step, by whichever process gets it.
-- KEYS[1] leases ZSET  KEYS[2] job key prefix  KEYS[3] ready key prefix  KEYS[4] dead ZSET
-- KEYS[5] done ZSET    KEYS[6] notify LIST   KEYS[7] owner index prefix
-- ARGV[1] at most this many leases   ARGV[2] finished-record retention ms
-- Expiry is judged on Redis's clock (TIME), the one leases were set with.
-- Returns {requeued, dead, cancelled}. The attempt was counted when the job was claimed; the fence
--   is bumped so the silent holder's late finish is refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[2])
local requeued, dead, cancelled = 0, 0, 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local jk = KEYS[2] .. id
  local s = redis.call('HMGET', jk, 'status', 'attempt', 'max_attempts', 'priority', 'cancel', 'owner')
  if s[1] == 'running' then
    local attempt = tonumber(s[2]) or 0
    local owner = s[6] or '?'
    local err = 'lease expired: worker ' .. owner .. ' stopped heartbeating'
    redis.call('HINCRBY', jk, 'fence', 1)
    local h = redis.call('HGET', jk, 'history')
    local entry = cjson.encode({ attempt = attempt, error = err, at = now, worker = owner })
    if not h or h == '' then h = '[' .. entry .. ']' else h = string.sub(h, 1, -2) .. ',' .. entry .. ']' end
    redis.call('HSET', jk, 'history', h)
    if s[5] == '1' then
      redis.call('HSET', jk, 'status', 'cancelled', 'completed_at', now, 'error', 'cancelled')
      if retention == 0 then
        local user = redis.call('HGET', jk, 'user')
        redis.call('DEL', jk)
        if user then redis.call('ZREM', KEYS[7] .. user, id) end
      else
        redis.call('ZADD', KEYS[5], now, id)
      end
      cancelled = cancelled + 1
    elseif attempt >= (tonumber(s[3]) or 1) then
      redis.call('HSET', jk, 'status', 'failed', 'completed_at', now,
        'error', err .. ' (attempt ' .. attempt .. ' of ' .. tostring(s[3]) .. ')')
      redis.call('ZADD', KEYS[4], now, id)
      dead = dead + 1
    else
      -- To the front: the job already waited its turn once.
      redis.call('HSET', jk, 'status', 'pending')
      redis.call('LPUSH', KEYS[3] .. s[4], id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 and redis.call('LLEN', KEYS[6]) == 0 then
  redis.call('RPUSH', KEYS[6], '1')
end
return { requeued, dead, cancelled }
