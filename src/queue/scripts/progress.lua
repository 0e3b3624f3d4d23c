-- progress: record a running job's progress and publish it as an event, if the writer still holds it.
-- KEYS[1] job key
-- ARGV[1] fence   ARGV[2] progress 0-100   ARGV[3] message   ARGV[4] events channel   ARGV[5] event JSON
-- Returns 1 when recorded, 0 when the fence is stale or the job is not running.
local s = redis.pcall('HMGET', KEYS[1], 'fence', 'status')
if s['err'] then return 0 end
if s[1] ~= ARGV[1] or s[2] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'progress_message', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
