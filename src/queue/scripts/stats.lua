-- stats: one queue's depth per state, read in one round trip (metrics scrape, `queues`).
-- KEYS[1] ready key prefix  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] leases  KEYS[5] dead
-- KEYS[6] done  KEYS[7] paused flag  KEYS[8] workers ZSET  KEYS[9] job key prefix
-- ARGV[1] now ms
-- Returns {critical, high, normal, low, scheduled, retrying, running, dead, done, paused 0|1,
--   live workers, oldest ready job's due time ms (-1 when none is ready)}
local out = {}
local oldest = -1
for _, p in ipairs({ 'critical', 'high', 'normal', 'low' }) do
  out[#out + 1] = redis.call('LLEN', KEYS[1] .. p)
  local head = redis.call('LINDEX', KEYS[1] .. p, 0)
  if head then
    local t = redis.call('HMGET', KEYS[9] .. head, 'enqueued_at', 'run_at')
    local due = math.max(tonumber(t[1]) or 0, tonumber(t[2]) or 0)
    if due > 0 and (oldest < 0 or due < oldest) then oldest = due end
  end
end
out[#out + 1] = redis.call('ZCARD', KEYS[2])
out[#out + 1] = redis.call('ZCARD', KEYS[3])
out[#out + 1] = redis.call('ZCARD', KEYS[4])
out[#out + 1] = redis.call('ZCARD', KEYS[5])
out[#out + 1] = redis.call('ZCARD', KEYS[6])
out[#out + 1] = redis.call('EXISTS', KEYS[7])
out[#out + 1] = redis.call('ZCOUNT', KEYS[8], ARGV[1], '+inf')
out[#out + 1] = oldest
return out
