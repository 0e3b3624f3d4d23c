-- trim: bounded retention of finished jobs, so Redis memory is flat after a burst.
-- KEYS[1] done ZSET   KEYS[2] dead ZSET   KEYS[3] job key prefix   KEYS[4] workers ZSET
-- KEYS[5] owner index prefix
-- ARGV[1] now ms   ARGV[2] done retention ms   ARGV[3] max done records   ARGV[4] max dead records
-- ARGV[5] at most this many deletions per set in this call
-- Returns {done removed, dead removed}: records past the retention time, then past the count
--   caps, oldest first (the record and its index entry go together).
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[5])
-- A record is deleted only while it is still in the state its index says (an id re-enqueued
-- after its record was deleted must not lose its new record).
local function drop_oldest(set, k, states)
  if k <= 0 then return 0 end
  if k > limit then k = limit end
  local ids = redis.call('ZRANGE', set, 0, k - 1)
  for _, id in ipairs(ids) do
    local jk = KEYS[3] .. id
    local h = redis.pcall('HMGET', jk, 'status', 'user')
    if h['err'] then
      -- Past retention and not even a record: it goes with its index entry.
      redis.call('DEL', jk)
    elseif h[1] and states[h[1]] then
      redis.call('DEL', jk)
      if h[2] then
        local idx = KEYS[5] .. h[2]
        cw_call(idx, 'zset', now, 'ZREM', idx, id)
      end
    end
  end
  redis.call('ZREMRANGEBYRANK', set, 0, k - 1)
  return #ids
end
local finished = { completed = true, cancelled = true }
-- The first command on each set goes through cw_call; the ones after it find the right type.
local done = drop_oldest(KEYS[1], cw_call(KEYS[1], 'zset', now, 'ZCOUNT', KEYS[1], '-inf',
  now - tonumber(ARGV[2])), finished)
done = done + drop_oldest(KEYS[1], redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3]), finished)
local dead = drop_oldest(KEYS[2], cw_call(KEYS[2], 'zset', now, 'ZCARD', KEYS[2])
  - tonumber(ARGV[4]), { failed = true })
cw_call(KEYS[4], 'zset', now, 'ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
return { done, dead }
