-- Commits applied writes after their files were replaced: records the last applied stream id, marks each
-- write applied and acknowledges it, only if the caller still holds the table's apply lease (fencing).
-- KEYS[1] apply lease owner key ("<token>|<epoch>")
-- KEYS[2] writes-applied string (last stream id applied)
-- KEYS[3] write-state hash
-- KEYS[4] writes stream
-- ARGV[1] lease token of the caller
-- ARGV[2] consumer group
-- ARGV[3] last applied stream id ("" to leave it)
-- ARGV[4..] pairs: stream id, WriteState JSON ("" to leave the state as it is)
-- Returns the number of entries acknowledged, or -1 when the lease is lost (nothing changed).
local owner = redis.call('GET', KEYS[1])
local token = ARGV[1]
if not owner or string.sub(owner, 1, string.len(token) + 1) ~= token .. '|' then
  return -1
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
end
local acked = 0
local i = 4
while i < #ARGV do
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
  acked = acked + redis.call('XACK', KEYS[4], ARGV[2], ARGV[i])
  i = i + 2
end
return acked
