-- Queues one write and records it as pending, in one step, then wakes the appliers.
-- KEYS[1] the table's writes stream
-- KEYS[2] the table's write-state hash
-- ARGV[1] entry JSON fields: v, op, key (JSON), rows (JSON), at
-- ARGV[2] op
-- ARGV[3] key columns JSON
-- ARGV[4] rows JSON
-- ARGV[5] now (ms)
-- ARGV[6] pending WriteState JSON
-- ARGV[7] wake-up channel
-- ARGV[8] table name (the wake-up message)
-- Returns the stream id of the entry (the write id is "<table>.<stream id>").
local id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[1], 'op', ARGV[2], 'key', ARGV[3], 'rows', ARGV[4], 'at', ARGV[5])
redis.call('HSET', KEYS[2], id, ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return id
