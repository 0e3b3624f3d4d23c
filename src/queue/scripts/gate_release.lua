-- gate_release: give a gate back, but only the holder's own claim (one that expired and was
-- taken over by another process stays with it). Sent without lib.lua: it touches one string key.
-- KEYS[1] the gate (a string: its holder)
-- ARGV[1] the holder's mark
-- Returns 1 when the gate was deleted, else 0 (held by another, gone, or of another type).
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
