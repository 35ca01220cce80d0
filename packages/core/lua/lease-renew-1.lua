-- Renews a lease the caller holds; never acquires one. A lease whose key expired or vanished (Redis lost its
-- data) stays lost: its holder must stop, since what it read under the lease may be gone or taken over.
-- KEYS[1] owner key ("<token>|<epoch>")
-- ARGV[1] token of the caller
-- ARGV[2] TTL in ms
-- Returns the epoch (> 0) when renewed, 0 when the caller no longer holds the lease.
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local sep = string.find(cur, '|', 1, true)
if not sep or string.sub(cur, 1, sep - 1) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(string.sub(cur, sep + 1))
