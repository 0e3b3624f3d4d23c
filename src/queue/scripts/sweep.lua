-- sweep: check a batch of job records against the structure their status says they are in, and
-- repair or dead-letter what is off (the consistency sweep's step; safe in every process).
-- KEYS[1] job key prefix  KEYS[2] ready key prefix  KEYS[3] scheduled ZSET  KEYS[4] retry ZSET
-- KEYS[5] leases ZSET     KEYS[6] dead ZSET         KEYS[7] done ZSET       KEYS[8] notify LIST
-- ARGV[1] mode: 'structures' (set aside every queue structure of the wrong type; no ids),
--   'check' (every state but membership of a ready list, which needs a list scan) or
--   'ready' (pending jobs only: look for each in its ready list and push it when absent)
-- ARGV[2] lease ms   ARGV[3..] job ids
-- Where each status belongs: pending -> a ready list or scheduled (at its run-at when that is
--   still ahead); running -> leases (a record found running without a lease gets a full lease:
--   a live holder's heartbeat keeps it, a dead holder's runs out and the rescuer hands the job
--   back, counting the attempt); retrying -> retry; failed -> dead; completed, cancelled -> done.
-- Returns {checked, repaired, dead-lettered, pending ids found in neither scheduled nor (mode
--   'check') looked for in a ready list}.
local now = cw_now()
local mode = ARGV[1]
local lease = tonumber(ARGV[2])
if mode == 'structures' then
  for _, p in ipairs({ 'critical', 'high', 'normal', 'low' }) do cw_want(KEYS[2] .. p, 'list', now) end
  for k = 3, 7 do cw_want(KEYS[k], 'zset', now) end
  cw_want(KEYS[8], 'list', now)
  return { 0, 0, 0, {} }
end

local checked, repaired, buried = 0, 0, 0
local unplaced = {}
local homes = { running = KEYS[5], retrying = KEYS[4], failed = KEYS[6], completed = KEYS[7],
  cancelled = KEYS[7] }
local pushed = false
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = KEYS[1] .. id
  local r, why = cw_read(jk, 'check')
  if r then checked = checked + 1 end
  if not r and why ~= 'missing' then
    cw_bury(jk, id, why, KEYS[6], now)
    checked = checked + 1
    buried = buried + 1
  elseif r and r.status == 'pending' then
    if not cw_call(KEYS[3], 'zset', now, 'ZSCORE', KEYS[3], id) then
      if mode == 'ready' then
        local list = KEYS[2] .. r.priority
        local run_at = tonumber(r.run_at) or 0
        if run_at > now then
          cw_call(KEYS[3], 'zset', now, 'ZADD', KEYS[3], run_at, id)
          repaired = repaired + 1
          pushed = true
        elseif not cw_call(list, 'list', now, 'LPOS', list, id) then
          redis.call('RPUSH', list, id)
          repaired = repaired + 1
          pushed = true
        end
      else
        unplaced[#unplaced + 1] = id
      end
    end
  elseif r and mode == 'check' then
    local home = homes[r.status]
    if not cw_call(home, 'zset', now, 'ZSCORE', home, id) then
      local score = now
      if r.status == 'running' then score = now + lease end
      redis.call('ZADD', home, score, id)
      repaired = repaired + 1
      if r.status == 'retrying' then pushed = true end
    end
  end
end
if pushed and cw_call(KEYS[8], 'list', now, 'LLEN', KEYS[8]) == 0 then redis.call('RPUSH', KEYS[8], '1') end
return { checked, repaired, buried, unplaced }
