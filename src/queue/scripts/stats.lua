-- stats: one queue's depth per state, read in one round trip (metrics scrape, `queues`).
-- KEYS[1] ready key prefix  KEYS[2] scheduled  KEYS[3] retry  KEYS[4] leases  KEYS[5] dead
-- KEYS[6] done  KEYS[7] paused flag  KEYS[8] workers ZSET  KEYS[9] job key prefix
-- ARGV[1] now ms
-- Returns {critical, high, normal, low, scheduled, retrying, running, dead, done, paused 0|1,
--   live workers, oldest ready job's due time ms (-1 when none is ready)}
-- Read-only: a structure of the wrong type counts as empty (the next script that writes it, or
-- the consistency sweep, sets it aside).
local function len(key, want)
  local t = cw_type(key)
  if t ~= want then return 0 end
  if t == 'list' then return redis.call('LLEN', key) end
  return redis.call('ZCARD', key)
end
local out = {}
local oldest = -1
for _, p in ipairs({ 'critical', 'high', 'normal', 'low' }) do
  out[#out + 1] = len(KEYS[1] .. p, 'list')
  local head = false
  if out[#out] > 0 then head = redis.call('LINDEX', KEYS[1] .. p, 0) end
  if head then
    if cw_type(KEYS[9] .. head) == 'hash' then
      local t = redis.call('HMGET', KEYS[9] .. head, 'enqueued_at', 'run_at')
      local due = math.max(tonumber(t[1]) or 0, tonumber(t[2]) or 0)
      if due > 0 and (oldest < 0 or due < oldest) then oldest = due end
    end
  end
end
out[#out + 1] = len(KEYS[2], 'zset')
out[#out + 1] = len(KEYS[3], 'zset')
out[#out + 1] = len(KEYS[4], 'zset')
out[#out + 1] = len(KEYS[5], 'zset')
out[#out + 1] = len(KEYS[6], 'zset')
out[#out + 1] = redis.call('EXISTS', KEYS[7])
if cw_type(KEYS[8]) == 'zset' then
  out[#out + 1] = redis.call('ZCOUNT', KEYS[8], ARGV[1], '+inf')
else
  out[#out + 1] = 0
end
out[#out + 1] = oldest
return out
