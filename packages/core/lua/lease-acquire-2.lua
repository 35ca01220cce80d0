-- Acquires or renews a lease with a fencing epoch.
-- KEYS[1] owner key ("<token>|<epoch>", expires after the TTL)
-- KEYS[2] epoch counter (incremented on every new acquisition)
-- ARGV[1] token of the caller
-- ARGV[2] TTL in ms
-- Returns the epoch (> 0) when the caller holds the lease afterwards, 0 when someone else holds it.
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if sep and string.sub(cur, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, sep + 1))
  end
  return 0
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
return epoch
