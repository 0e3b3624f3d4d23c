-- cron_advance: move a schedule's last fired tick on, never back. A key that is not a number
-- (of another type, or text) is replaced: it only remembers a tick, and a stuck key would stop
-- the schedule for good. Sent without lib.lua: it touches one string key.
-- KEYS[1] the schedule's last-fire mark (a string: tick ms)
-- ARGV[1] the tick, ms since the epoch
-- Returns 0.
local cur = -1
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
  cur = tonumber(redis.call('GET', KEYS[1])) or -1
else
  redis.call('DEL', KEYS[1])
end
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
