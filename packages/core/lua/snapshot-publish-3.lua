-- Points a table at a new snapshot version and announces it, in one atomic step.
-- KEYS[1] meta hash (json, version, sourceGen, updatedAt)
-- KEYS[2] retired zset (member "<blob>:<chunks>" -> retired-at ms)
-- KEYS[3] build lease owner key ("<token>|<epoch>")
-- ARGV[1] build lease token of the caller (fencing: only the current lease holder may publish)
-- ARGV[2] TableMeta JSON, or "" to drop the table
-- ARGV[3] version
-- ARGV[4] source generation
-- ARGV[5] now (ms)
-- ARGV[6] channel to announce on
-- ARGV[7] SnapshotEvent JSON
-- ARGV[8] retired-set member of the new snapshot's blob ("" for none): written provisionally with a
--         far score before the blob was stored; removed on success, made collectable on refusal
-- Returns 1 published, 0 refused: lease lost (-> retry later) or a newer snapshot is already current.
local owner = redis.call('GET', KEYS[3])
local token = ARGV[1]
if not owner or string.sub(owner, 1, string.len(token) + 1) ~= token .. '|' then
  if ARGV[8] ~= '' then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[8]) end
  return 0
end
local curGen = tonumber(redis.call('HGET', KEYS[1], 'sourceGen') or '-1')
if curGen > tonumber(ARGV[4]) then
  if ARGV[8] ~= '' then redis.call('ZADD', KEYS[2], ARGV[5], ARGV[8]) end
  return 0
end
local old = redis.call('HGET', KEYS[1], 'retire')
if old then
  redis.call('ZADD', KEYS[2], ARGV[5], old)
end
if ARGV[2] == '' then
  -- A dropped table keeps only its source generation, so no older build can bring it back.
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'sourceGen', ARGV[4], 'updatedAt', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'json', ARGV[2], 'version', ARGV[3], 'sourceGen', ARGV[4], 'updatedAt', ARGV[5], 'retire', ARGV[8])
end
if ARGV[8] ~= '' then redis.call('ZREM', KEYS[2], ARGV[8]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
