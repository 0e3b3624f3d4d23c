-- enqueue: add jobs to one queue atomically (one call carries a bounded chunk of a batch).
-- KEYS[1] job key prefix        <p>:{q}:job:
-- KEYS[2] ready key prefix      <p>:{q}:ready:   (+ priority)
-- KEYS[3] scheduled ZSET        (score: run-at ms)
-- KEYS[4] notify LIST           (one token wakes a blocked fetcher)
-- KEYS[5] idempotency prefix    <p>:{q}:idem:
-- KEYS[6] owner index prefix    <p>:{q}:owner:  (+ user id: that user's jobs, score = created ms;
--   only jobs with an owner are indexed, so ownerless work pays nothing for the API's listing)
-- ARGV[1] now (ms)   ARGV[2] idempotency TTL (ms)   (callers send at most 500 jobs per call)
-- ARGV[3..] eight values per job: id, payload, priority, run_at ms (0 = now), max_attempts,
--   idempotency key ('' = none), owner user id ('' = none), created ms
-- A key of the wrong type in the way is set aside first (lib.lua); a job with an unknown priority
--   or counters that are not numbers refuses the whole call before anything is written.
-- Returns a flat array, two values per job: the job id (the first job's id on an idempotency hit,
--   or the same id when that id already exists), and 1 if this call created it, else 0.
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {}
local pushed = false
local ready = {}
-- Everything is checked before anything is written: a bad job refuses the whole call.
for i = 3, #ARGV, 8 do
  if not CW_PRIORITIES[ARGV[i + 2]] then
    return redis.error_reply('enqueue: job ' .. ARGV[i] .. ' has priority ' .. cw_shown(ARGV[i + 2])
      .. ', not one of critical, high, normal, low')
  end
  if not tonumber(ARGV[i + 3]) or not cw_count(ARGV[i + 4]) or tonumber(ARGV[i + 4]) < 1 then
    return redis.error_reply('enqueue: job ' .. ARGV[i] .. ' has run_at ' .. cw_shown(ARGV[i + 3])
      .. ' / max_attempts ' .. cw_shown(ARGV[i + 4]) .. ' (whole numbers, max_attempts >= 1)')
  end
end
for i = 3, #ARGV, 8 do
  local id, payload, prio = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local run_at, max_attempts, idem = tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5]
  local user, created = ARGV[i + 6], ARGV[i + 7]
  local existing = false
  if idem ~= '' then
    -- An idempotency entry only remembers an id: one of another type is overwritten below.
    existing = redis.pcall('GET', KEYS[5] .. idem)
    if type(existing) == 'table' then existing = false end
  end
  -- Re-sending the same id (a producer retrying after a lost reply) never enqueues twice.
  if not existing and redis.call('EXISTS', KEYS[1] .. id) == 1 then
    existing = id
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    if idem ~= '' and ttl > 0 then
      redis.call('SET', KEYS[5] .. idem, id, 'PX', ttl)
    end
    -- fence and attempt start absent (= 0): every reader defaults them.
    redis.call('HSET', KEYS[1] .. id, 'payload', payload, 'status', 'pending', 'priority', prio,
      'max_attempts', max_attempts, 'enqueued_at', now, 'run_at', run_at)
    if user ~= '' then
      redis.call('HSET', KEYS[1] .. id, 'user', user)
      cw_call(KEYS[6] .. user, 'zset', now, 'ZADD', KEYS[6] .. user, created, id)
    end
    if run_at > now then
      cw_call(KEYS[3], 'zset', now, 'ZADD', KEYS[3], run_at, id)
    else
      -- Batched per priority below: one RPUSH per level per call keeps FIFO and saves calls.
      local list = ready[prio]
      if not list then list = {}; ready[prio] = list end
      list[#list + 1] = id
    end
    -- A delayed job wakes an idle fetcher too, so it recomputes how long to sleep.
    pushed = true
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
for prio, list in pairs(ready) do
  cw_call(KEYS[2] .. prio, 'list', now, 'RPUSH', KEYS[2] .. prio, unpack(list))
end
if pushed and cw_call(KEYS[4], 'list', now, 'LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
return out
