-- purge: delete dead-lettered jobs for good.
-- KEYS[1] dead ZSET   KEYS[2] job key prefix   KEYS[3] owner index prefix
-- ARGV[1] job id ('' = the oldest ARGV[2] dead jobs)   ARGV[2] limit
-- Returns the number of jobs deleted.
local now = cw_now()
local ids
if ARGV[1] ~= '' then ids = { ARGV[1] }
else ids = cw_call(KEYS[1], 'zset', now, 'ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
local n = 0
for _, id in ipairs(ids) do
  if cw_call(KEYS[1], 'zset', now, 'ZREM', KEYS[1], id) == 1 then
    local jk = KEYS[2] .. id
    local user = redis.pcall('HGET', jk, 'user')
    if type(user) == 'table' then user = false end
    redis.call('DEL', jk)
    if user then
      local idx = KEYS[3] .. user
      cw_call(idx, 'zset', now, 'ZREM', idx, id)
    end
    n = n + 1
  end
end
return n
