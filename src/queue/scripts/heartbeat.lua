-- heartbeat: extend the leases a worker still holds and register the worker as alive.
-- KEYS[1] leases ZSET   KEYS[2] job key prefix   KEYS[3] workers ZSET (score: expiry ms)
-- ARGV[1] lease length ms   ARGV[2] worker name   ARGV[3] worker alive-for ms
-- (deadlines use Redis's clock, like fetch and rescue)
-- ARGV[4..] two values per held job: id, fence
-- Returns {lost (id, fence pairs, flat), ids whose cancellation was requested}. A lost job was
--   rescued: its fence moved on, so the holder must stop (its finish would be refused anyway). A job
--   that ended under this same fence (its finish landed after the snapshot) is neither. A job whose
--   record is no longer a hash is lost too.
local now = cw_now()
local deadline = now + tonumber(ARGV[1])
local lost, cancel = {}, {}
for i = 4, #ARGV, 2 do
  local id, fence = ARGV[i], ARGV[i + 1]
  local s = redis.pcall('HMGET', KEYS[2] .. id, 'fence', 'status', 'cancel')
  if s['err'] then
    -- Its record was overwritten with something else: the holder stops, the lease runs out and
    -- the rescuer dead-letters the record with the reason.
    lost[#lost + 1] = id
    lost[#lost + 1] = fence
  elseif s[1] == fence and s[2] == 'running' then
    cw_call(KEYS[1], 'zset', now, 'ZADD', KEYS[1], deadline, id)
    if s[3] == '1' then cancel[#cancel + 1] = id end
  elseif s[1] and s[1] ~= fence then
    lost[#lost + 1] = id
    lost[#lost + 1] = fence
  end
end
cw_call(KEYS[3], 'zset', now, 'ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
return { lost, cancel }
