/**
 * Where Redis is: one server, a Redis Cluster, or a master found through Sentinel. Parsed from
 * `FLASHDUCK_REDIS_URL` (and `FLASHDUCK_REDIS_CLUSTER_NODES`):
 *
 * ```
 * redis://[user:password@]host:port[/db]                      one server (rediss:// for TLS)
 * redis+cluster://[user:password@]host:port,host:port,…       Redis Cluster seed nodes (rediss+cluster:// for TLS)
 * redis+sentinel://[user:password@]host:port,…/master[/db]    Sentinel: the master named "master"
 *                  [?sentinelUsername=…&sentinelPassword=…]    (rediss+sentinel:// for TLS to master and sentinels)
 * ```
 *
 * `FLASHDUCK_REDIS_CLUSTER_NODES=host:port,…` with a plain `redis://` URL is the older spelling of the
 * cluster form: the nodes come from the variable, credentials and TLS from the URL.
 */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly kind: 'single'; readonly url: string; readonly tls: boolean }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[]; readonly username?: string; readonly password?: string; readonly tls: boolean }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisNode[];
      readonly name: string;
      readonly db: number;
      readonly username?: string;
      readonly password?: string;
      readonly sentinelUsername?: string;
      readonly sentinelPassword?: string;
      readonly tls: boolean;
    };

const URL_RE = /^(rediss?)(?:\+(cluster|sentinel))?:\/\/(?:([^@/]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/;

/** `host:port,…` (IPv6 hosts in brackets) → nodes; throws with the part that is wrong. */
export function parseNodeList(list: string): RedisNode[] {
  const nodes: RedisNode[] = [];
  for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(part);
    if (!m || Number(m[2]) > 65_535) throw new Error(`"${part}" is not host:port`);
    nodes.push({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
  }
  if (!nodes.length) throw new Error('no host:port given');
  return nodes;
}

function credentials(userinfo: string | undefined): { username?: string; password?: string } {
  if (!userinfo) return {};
  const i = userinfo.indexOf(':');
  const user = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i));
  const pass = i < 0 ? '' : decodeURIComponent(userinfo.slice(i + 1));
  return { ...(user ? { username: user } : {}), ...(pass ? { password: pass } : {}) };
}

/** Parses a Redis URL in any of the forms above; throws an error that says what is wrong. */
export function parseRedisTarget(url: string, clusterNodes?: readonly RedisNode[] | null): RedisTarget {
  const m = URL_RE.exec(url);
  if (!m) throw new Error('must be redis://host:port, redis+cluster://host:port,host:port or redis+sentinel://host:port,…/master (rediss… for TLS)');
  const [, scheme, mode, userinfo, hosts, pathPart, search] = m;
  const tls = scheme === 'rediss';
  const auth = credentials(userinfo);
  if (!mode) {
    if (clusterNodes?.length) return { kind: 'cluster', nodes: clusterNodes, ...auth, tls };
    if (hosts!.includes(',')) throw new Error('lists several hosts: use redis+cluster:// or redis+sentinel://');
    return { kind: 'single', url, tls };
  }
  const nodes = parseNodeList(hosts!);
  if (mode === 'cluster') {
    if (pathPart && pathPart !== '/') throw new Error('a cluster URL has no database path (Redis Cluster only has database 0)');
    return { kind: 'cluster', nodes, ...auth, tls };
  }
  const segments = (pathPart ?? '').split('/').filter(Boolean);
  const name = segments[0] ? decodeURIComponent(segments[0]) : '';
  if (!name) throw new Error('a sentinel URL names the master: redis+sentinel://host:port,…/<master name>[/db]');
  const db = segments[1] === undefined ? 0 : Number(segments[1]);
  if (!Number.isInteger(db) || db < 0 || segments.length > 2) throw new Error(`"${pathPart}" is not /<master name>[/db]`);
  const params = new URLSearchParams(search ?? '');
  for (const k of params.keys()) if (k !== 'sentinelUsername' && k !== 'sentinelPassword') throw new Error(`unknown parameter "${k}" (sentinelUsername, sentinelPassword)`);
  const sentinelUsername = params.get('sentinelUsername') ?? undefined;
  const sentinelPassword = params.get('sentinelPassword') ?? undefined;
  return {
    kind: 'sentinel',
    sentinels: nodes,
    name,
    db,
    ...auth,
    ...(sentinelUsername ? { sentinelUsername } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
    tls,
  };
}

/** A short description for logs and messages (no secrets). */
export function describeRedisTarget(t: RedisTarget): string {
  const list = (nodes: readonly RedisNode[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');
  if (t.kind === 'single') return redactUrl(t.url);
  if (t.kind === 'cluster') return `Redis Cluster ${list(t.nodes)}`;
  return `Sentinel ${list(t.sentinels)} master "${t.name}"`;
}

/** A Redis URL with its passwords replaced, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):([^@]*)@/, '//$1:***@').replace(/(sentinelPassword=)[^&#]*/, '$1***');
}
