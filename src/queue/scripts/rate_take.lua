-- rate_take: one request against a provider account's sliding-window log, on Redis's clock.
-- Sent without lib.lua: it touches one key of its own.
-- KEYS[1] the log (ZSET of `id:tokens` by grant time, ms)
-- ARGV[1] window ms   ARGV[2] max requests (0 = none)   ARGV[3] max tokens (0 = none)
-- ARGV[4] this request's tokens   ARGV[5] a unique id for its entry
-- Returns 0 when granted (and recorded), -1 when the request can never fit, else the wait in ms
--   until enough of the window's oldest grants leave it. The tokens in the window are summed
--   from the log itself on every call (at most one entry per request in the window), so no
--   second key can drift from it.
-- The log is only a window of grants: one of another type is replaced rather than left to fail
-- every call (the limit forgets at most one window).
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, maxr, maxt, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if maxt > 0 and cost > maxt then return -1 end
local function tokens(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count = #entries / 2
local wait = 0
if maxr > 0 and count + 1 > maxr then
  -- the (count + 1 - maxr)-th oldest grant must leave the window first
  wait = math.max(wait, tonumber(entries[(count - maxr) * 2 + 2]) + window - now + 1)
end
if maxt > 0 then
  local used = 0
  for i = 1, #entries, 2 do used = used + tokens(entries[i]) end
  if used + cost > maxt then
    local need, freed, found = used + cost - maxt, 0, false
    for i = 1, #entries, 2 do
      freed = freed + tokens(entries[i])
      if freed >= need then
        wait = math.max(wait, tonumber(entries[i + 1]) + window - now + 1)
        found = true
        break
      end
    end
    if not found then wait = math.max(wait, window) end
  end
end
if wait == 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. cost)
end
redis.call('PEXPIRE', KEYS[1], window * 2)
return wait
