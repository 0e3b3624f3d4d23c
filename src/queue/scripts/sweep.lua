-- sweep: check a batch of job records against the structure their status says they are in, and
-- repair or dead-letter what is off (the consistency sweep's step; safe in every process).
-- KEYS[1] job key prefix  KEYS[2] ready key prefix  KEYS[3] scheduled ZSET  KEYS[4] retry ZSET
-- KEYS[5] leases ZSET     KEYS[6] dead ZSET         KEYS[7] done ZSET       KEYS[8] notify LIST
-- ARGV[1] mode: 'check' (every state but membership of a ready list, which needs a list scan) or
--   'ready' (pending jobs only: look for each in its ready list and push it when absent)
-- ARGV[2..] job ids
-- Where each status belongs: pending -> a ready list or scheduled; running -> leases (a record
--   found running without a lease gets an expired one, so the rescuer hands it back counting
--   the attempt); retrying -> retry; failed -> dead; completed, cancelled -> done.
-- Returns {checked, repaired, dead-lettered, pending ids found in neither scheduled nor (mode
--   'check') looked for in a ready list}.
local now = cw_now()
local mode = ARGV[1]
for _, p in ipairs({ 'critical', 'high', 'normal', 'low' }) do cw_want(KEYS[2] .. p, 'list', now) end
cw_want(KEYS[3], 'zset', now)
cw_want(KEYS[4], 'zset', now)
cw_want(KEYS[5], 'zset', now)
cw_want(KEYS[6], 'zset', now)
cw_want(KEYS[7], 'zset', now)
cw_want(KEYS[8], 'list', now)

local checked, repaired, buried = 0, 0, 0
local unplaced = {}
local homes = { running = KEYS[5], retrying = KEYS[4], failed = KEYS[6], completed = KEYS[7],
  cancelled = KEYS[7] }
local pushed = false
for i = 2, #ARGV do
  local id = ARGV[i]
  local jk = KEYS[1] .. id
  local r, why = cw_read(jk)
  if r then checked = checked + 1 end
  if not r and why ~= 'missing' then
    cw_bury(jk, id, why, KEYS[6], now)
    checked = checked + 1
    buried = buried + 1
  elseif r and r.status == 'pending' then
    if not redis.call('ZSCORE', KEYS[3], id) then
      if mode == 'ready' then
        if not redis.call('LPOS', KEYS[2] .. r.priority, id) then
          redis.call('RPUSH', KEYS[2] .. r.priority, id)
          repaired = repaired + 1
          pushed = true
        end
      else
        unplaced[#unplaced + 1] = id
      end
    end
  elseif r and mode == 'check' then
    local home = homes[r.status]
    if not redis.call('ZSCORE', home, id) then
      -- Running without a lease: an expired one, so the rescuer takes it (and counts it).
      -- Anything else: indexed from now (finished ones are then trimmed by retention).
      redis.call('ZADD', home, now, id)
      repaired = repaired + 1
      if r.status == 'retrying' then pushed = true end
    end
  end
end
if pushed and redis.call('LLEN', KEYS[8]) == 0 then redis.call('RPUSH', KEYS[8], '1') end
return { checked, repaired, buried, unplaced }
