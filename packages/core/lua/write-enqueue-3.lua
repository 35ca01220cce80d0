-- Queues one write and records it as pending, in one step, then wakes the appliers. With an idempotency key,
-- the key is checked and recorded in the same step: a second request with the key (a client's retry, or a
-- concurrent duplicate) gets the first one's stream id and queues nothing.
-- KEYS[1] the table's writes stream
-- KEYS[2] the table's write-state hash
-- KEYS[3] the idempotency record of this key (in the table's slot; unused without a key)
-- ARGV[1] entry JSON fields: v, op, key (JSON), rows (JSON), at
-- ARGV[2] op
-- ARGV[3] key columns JSON
-- ARGV[4] rows JSON
-- ARGV[5] now (ms)
-- ARGV[6] pending WriteState JSON
-- ARGV[7] wake-up channel
-- ARGV[8] table name (the wake-up message)
-- ARGV[9] fingerprint of the request (op and body), or '' without an idempotency key
-- ARGV[10] how long the key is remembered (ms)
-- Returns {outcome, stream id}: outcome 'new', 'replay' (same key, same request) or 'reused' (same key, another request).
if ARGV[9] ~= '' then
  local rec = redis.call('GET', KEYS[3])
  if rec then
    local sep = string.find(rec, '|', 1, true)
    local fingerprint = string.sub(rec, 1, sep - 1)
    local first = string.sub(rec, sep + 1)
    if fingerprint == ARGV[9] then
      return {'replay', first}
    end
    return {'reused', first}
  end
end
local id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[1], 'op', ARGV[2], 'key', ARGV[3], 'rows', ARGV[4], 'at', ARGV[5])
redis.call('HSET', KEYS[2], id, ARGV[6])
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[3], ARGV[9] .. '|' .. id, 'PX', ARGV[10])
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {'new', id}
