import { describe, expect, it } from 'vitest';
import { EnvReader, isInside, readCommonConfig, redactConfig } from './config.js';
import { ConfigError } from './errors.js';

describe('config', () => {
  it('reports every problem at once, each naming its variable', () => {
    const r = new EnvReader({
      FLASHDUCK_REDIS_URL: 'http://nope',
      FLASHDUCK_PREFIX: 'a b',
      FLASHDUCK_LOG_LEVEL: 'loud',
      FLASHDUCK_SHUTDOWN_MS: 'soon',
    });
    readCommonConfig(r);
    r.int('MONITOR_POLL_MS', 1000, { min: 10 });
    r.bool('MONITOR_WATCH', false);
    try {
      r.finish({});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      for (const name of ['FLASHDUCK_REDIS_URL', 'FLASHDUCK_PREFIX', 'FLASHDUCK_LOG_LEVEL', 'FLASHDUCK_SHUTDOWN_MS']) {
        expect(problems).toContain(name);
      }
    }
  });

  it('applies defaults and returns a frozen object', () => {
    const r = new EnvReader({});
    const c = r.finish(readCommonConfig(r));
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.prefix).toBe('fd');
    expect(c.redisClusterNodes).toBeNull();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses cluster nodes and refuses a malformed one', () => {
    const ok = new EnvReader({ FLASHDUCK_REDIS_CLUSTER_NODES: 'a:7000, b:7001' });
    expect(readCommonConfig(ok).redisClusterNodes).toEqual([
      { host: 'a', port: 7000 },
      { host: 'b', port: 7001 },
    ]);
    const bad = new EnvReader({ FLASHDUCK_REDIS_CLUSTER_NODES: 'a' });
    readCommonConfig(bad);
    expect(bad.problems.join()).toMatch(/FLASHDUCK_REDIS_CLUSTER_NODES: "a" is not host:port/);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['false', false],
    ['0', false],
  ])('accepts boolean %s', (raw, value) => {
    expect(new EnvReader({ X: raw }).bool('X', !value)).toBe(value);
  });

  it('refuses yes/no booleans and out-of-range integers', () => {
    const r = new EnvReader({ B: 'yes', N: '5' });
    r.bool('B', false);
    r.int('N', 1, { min: 10 });
    expect(r.problems).toEqual(['B: "yes" is not a boolean (use true, false, 1 or 0)', 'N: 5 is below the minimum 10']);
  });

  it('redacts passwords and tokens for logs', () => {
    expect(redactConfig({ redisUrl: 'redis://u:secret@h:6379', apiTokens: ['x'] })).toEqual({ redisUrl: 'redis://u:***@h:6379', apiTokens: '***' });
  });

  it('knows when a folder is inside another', () => {
    expect(isInside('/data', '/data/exports')).toBe(true);
    expect(isInside('/data', '/data')).toBe(true);
    expect(isInside('/data', '/exports')).toBe(false);
    expect(isInside('/data', '/data2')).toBe(false);
  });
});
