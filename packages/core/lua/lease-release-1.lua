-- Releases a lease if the caller still holds it.
-- KEYS[1] owner key
-- ARGV[1] token of the caller
-- Returns 1 when released, 0 when the caller did not hold it.
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
