export { formatTable, age } from './format-table.js';
export { redisAnswers, startPrivateRedis } from './ensure-redis.js';
