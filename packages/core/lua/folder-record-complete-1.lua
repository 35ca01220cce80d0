-- Marks the folder record complete, if it is still the recording the caller began.
-- KEYS[1] folder-record hash (id, state, since)
-- ARGV[1] id of the caller's recording
-- Returns 1 when marked, 0 when the record is another one or gone (Redis lost it mid-recording: record again).
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'complete')
return 1
