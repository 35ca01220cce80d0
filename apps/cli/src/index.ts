export { formatTable, age } from './format-table.js';
export { freePort, redisAnswers, startPrivateRedis } from './ensure-redis.js';
