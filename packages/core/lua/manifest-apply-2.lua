-- Applies a scan diff to a table's file manifest, fenced by the monitor leader's epoch.
-- KEYS[1] files hash (path -> FileFingerprint JSON)
-- KEYS[2] state hash (gen, epoch, scannedAt)
-- ARGV[1] leader epoch of the caller
-- ARGV[2] now (ms)
-- ARGV[3] number of removed paths R, then R paths, then (path, fingerprint) pairs to set
-- Returns the new manifest generation, or -1 when a newer leader has written (the caller is stale).
local stored = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
local epoch = tonumber(ARGV[1])
if stored > epoch then
  return -1
end
local removed = tonumber(ARGV[3])
local i = 4
for _ = 1, removed do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
while i < #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[2], 'epoch', epoch, 'scannedAt', ARGV[2])
return redis.call('HINCRBY', KEYS[2], 'gen', 1)
