-- Points a table at a new version (a list of parts) and announces it, in one atomic step. The fragment index
-- (which part holds each file's rows) is replaced in the same step, so it always describes the current version.
-- KEYS[1] meta hash (json, version, sourceGen, updatedAt, parts)
-- KEYS[2] retired zset (member "<part id>:<chunks>" -> when it left the current version, ms)
-- KEYS[3] build lease owner key ("<token>|<epoch>")
-- KEYS[4] fragment index hash (path -> Fragment JSON)
-- KEYS[5] version history hash (version -> TableMeta JSON): the retained versions, pruned by the cacher
-- KEYS[6] the table's manifest state hash (gen): the build's source generation must not be ahead of it
-- ARGV[1] build lease token of the caller (fencing: only the current lease holder may publish)
-- ARGV[2] TableMeta JSON, or "" to drop the table
-- ARGV[3] version
-- ARGV[4] source generation
-- ARGV[5] now (ms)
-- ARGV[6] channel to announce on
-- ARGV[7] SnapshotEvent JSON
-- ARGV[8] retired-set members of the new version's parts, space-separated ("" for none)
-- ARGV[9] the whole fragment index after this version, as a JSON object path -> Fragment JSON
-- ARGV[10] members stored provisionally (a far score) for this version: made collectable on refusal
-- Returns 1 published, 0 refused: lease lost (-> retry later), a newer version is already current, or Redis no
-- longer holds the manifest the version was built from (it lost its data meanwhile: the parts the version lists
-- may be gone with it, and the monitor records the folder again).
local function split(s)
  local t = {}
  for m in string.gmatch(s, '%S+') do t[#t + 1] = m end
  return t
end
local function refuse()
  for _, m in ipairs(split(ARGV[10])) do redis.call('ZADD', KEYS[2], ARGV[5], m) end
  return 0
end
local owner = redis.call('GET', KEYS[3])
local token = ARGV[1]
if not owner or string.sub(owner, 1, string.len(token) + 1) ~= token .. '|' then return refuse() end
local stateGen = tonumber(redis.call('HGET', KEYS[6], 'gen') or '-1')
if stateGen < tonumber(ARGV[4]) then return refuse() end
local curGen = tonumber(redis.call('HGET', KEYS[1], 'sourceGen') or '-1')
if curGen > tonumber(ARGV[4]) then return refuse() end
local keep = {}
for _, m in ipairs(split(ARGV[8])) do
  keep[m] = true
  redis.call('ZREM', KEYS[2], m)
end
local old = redis.call('HGET', KEYS[1], 'parts')
if old then
  for _, m in ipairs(split(old)) do
    if not keep[m] then redis.call('ZADD', KEYS[2], ARGV[5], m) end
  end
end
if ARGV[2] == '' then
  -- A dropped table keeps only its source generation, so no older build can bring it back.
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'sourceGen', ARGV[4], 'updatedAt', ARGV[5])
  -- Its retained versions go with it (their parts are collected once no version lists them).
  for _, json in ipairs(redis.call('HVALS', KEYS[5])) do
    local ok, meta = pcall(cjson.decode, json)
    if ok and type(meta) == 'table' and type(meta.parts) == 'table' then
      for _, p in ipairs(meta.parts) do
        if type(p) == 'table' and p.id and p.chunks then redis.call('ZADD', KEYS[2], ARGV[5], p.id .. ':' .. tostring(p.chunks)) end
      end
    end
  end
  redis.call('DEL', KEYS[5])
else
  redis.call('HSET', KEYS[1], 'json', ARGV[2], 'version', ARGV[3], 'sourceGen', ARGV[4], 'updatedAt', ARGV[5], 'parts', ARGV[8])
  redis.call('HSET', KEYS[5], ARGV[3], ARGV[2])
end
redis.call('DEL', KEYS[4])
for path, fragment in pairs(cjson.decode(ARGV[9])) do redis.call('HSET', KEYS[4], path, fragment) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
