import { describe, expect, it } from 'vitest';
import { EnvReader, readCommonConfig, redactConfig } from './config.js';
import { describeRedisTarget, parseRedisTarget } from './redis-target.js';

describe('Redis URL forms', () => {
  it('one server, with an ACL user, TLS and a database', () => {
    expect(parseRedisTarget('redis://127.0.0.1:6379')).toEqual({ kind: 'single', url: 'redis://127.0.0.1:6379', tls: false });
    expect(parseRedisTarget('rediss://app:s%40cret@redis.example:6380/2')).toMatchObject({ kind: 'single', tls: true });
  });

  it('a cluster from a redis+cluster:// URL or from FLASHDUCK_REDIS_CLUSTER_NODES', () => {
    expect(parseRedisTarget('redis+cluster://app:pw@a:7000,b:7001,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: 'app',
      password: 'pw',
      tls: false,
    });
    expect(parseRedisTarget('rediss://:pw@ignored:1', [{ host: 'n1', port: 7000 }])).toEqual({ kind: 'cluster', nodes: [{ host: 'n1', port: 7000 }], password: 'pw', tls: true });
  });

  it('a Sentinel-managed master with its database and sentinel credentials', () => {
    expect(parseRedisTarget('redis+sentinel://:pw@s1:26379,s2:26379/mymaster/3?sentinelPassword=sp')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      db: 3,
      password: 'pw',
      sentinelPassword: 'sp',
      tls: false,
    });
    expect(describeRedisTarget(parseRedisTarget('redis+sentinel://s1:26379/m'))).toBe('Sentinel s1:26379 master "m"');
  });

  it('says what is wrong with a bad URL, naming the variable', () => {
    const bad = (url: string, extra: Record<string, string> = {}) => {
      const r = new EnvReader({ FLASHDUCK_REDIS_URL: url, ...extra });
      readCommonConfig(r);
      return r.problems.join('\n');
    };
    expect(bad('http://x')).toMatch(/FLASHDUCK_REDIS_URL: "http:\/\/x" must be redis:\/\/host:port/);
    expect(bad('redis://a:1,b:2')).toMatch(/lists several hosts: use redis\+cluster:\/\//);
    expect(bad('redis+cluster://a')).toMatch(/"a" is not host:port/);
    expect(bad('redis+cluster://a:1/2')).toMatch(/only has database 0/);
    expect(bad('redis+sentinel://s:26379')).toMatch(/names the master/);
    expect(bad('redis+sentinel://s:26379/m?foo=1')).toMatch(/unknown parameter "foo"/);
    expect(bad('redis+cluster://a:1', { FLASHDUCK_REDIS_CLUSTER_NODES: 'b:2' })).toMatch(/FLASHDUCK_REDIS_CLUSTER_NODES: set either/);
    expect(bad('redis+cluster://a:1,b:2')).toBe('');
  });

  it('never logs a password of any form', () => {
    const r = new EnvReader({ FLASHDUCK_REDIS_URL: 'redis+sentinel://u:topsecret@s:26379/m?sentinelPassword=alsosecret' });
    const logged = JSON.stringify(redactConfig(readCommonConfig(r)));
    expect(logged).not.toMatch(/topsecret|alsosecret/);
    expect(logged).toContain('u:***@s:26379');
  });
});
