import { createHash } from 'node:crypto';
import { counter, gauge } from '@flashduck/core';

const lookups = counter('flashduck_query_cache_lookups_total', 'Result cache lookups', ['result']);
const cacheBytes = gauge('flashduck_query_cache_bytes', 'Bytes held by the result cache');

/** A finished answer, kept byte for byte. */
export interface CachedResult {
  readonly body: Buffer;
  readonly contentType: string;
  readonly rowCount: number;
  readonly truncated: boolean;
  readonly tables: Record<string, number>;
  readonly elapsedMs: number;
  readonly etag: string;
}

/** Functions whose result changes from one call to the next: a query that uses one is never cached. */
const VOLATILE = /\b(random|setseed|now|current_timestamp|current_date|current_time|current_localtime|current_localtimestamp|localtimestamp|localtime|today|get_current_time|get_current_timestamp|transaction_timestamp|gen_random_uuid|uuid|uuidv4|uuidv7|nextval|currval|txid_current|current_query|current_setting)\b/i;

/**
 * SQL as a cache key: whitespace runs and comments collapse and a trailing `;` goes, outside string
 * literals and quoted identifiers (which stay byte for byte). Keywords keep their case (changing case
 * could change a quoted identifier's meaning; an uncached miss is the only cost).
 */
export function normalizeSql(sql: string): string {
  let out = '';
  const token = /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|\s+|[^'"\s-/]+|./g;
  for (let m = token.exec(sql); m; m = token.exec(sql)) {
    const t = m[0];
    if (t.startsWith('--') || t.startsWith('/*') || /^\s+$/.test(t)) {
      if (!out.endsWith(' ')) out += ' ';
    } else out += t;
  }
  return out.trim().replace(/;\s*$/, '').trim();
}

/** Whether a query's answer may be reused while the table versions it reads stay the same. */
export function isCacheable(sql: string): boolean {
  return !VOLATILE.test(sql.replace(/'(?:[^']|'')*'/g, "''"));
}

/**
 * The identity of an answer: query text, format and the build of every table it reads — its version and its
 * publish time (`publishedAt`), since version numbers start again after Redis lost its data.
 */
export function resultKey(normalized: string, format: string, tables: Record<string, number>, publishedAt: (table: string) => number | undefined): string {
  const versions = Object.entries(tables)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([t, v]) => `${t}@${v}.${publishedAt(t) ?? 0}`)
    .join(',');
  return `${format}\n${versions}\n${normalized}`;
}

/** An HTTP entity tag for an answer: the same on every replica for the same query and table versions. */
export function etagOf(key: string): string {
  return `"${createHash('sha1').update(key).digest('base64url')}"`;
}

/**
 * This replica's cache of answers, least recently used first out, bounded in bytes. A key includes the
 * version of every table the query reads, so a new snapshot version can never be answered from an old
 * entry; `evictTables` frees the entries that read a table which changed.
 */
export class ResultCache {
  private readonly entries = new Map<string, CachedResult>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxEntryBytes: number,
  ) {}

  get(key: string): CachedResult | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      // Most recently used goes to the end.
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    lookups.inc({ result: hit ? 'hit' : 'miss' });
    return hit;
  }

  set(key: string, value: CachedResult): void {
    if (this.maxBytes === 0 || value.body.length > this.maxEntryBytes) return;
    const old = this.entries.get(key);
    if (old) this.bytes -= old.body.length;
    this.entries.delete(key);
    this.entries.set(key, value);
    this.bytes += value.body.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.body.length;
    }
    cacheBytes.set(this.bytes);
  }

  /** Drops every entry that read one of these tables. */
  evictTables(tables: ReadonlySet<string>): number {
    let n = 0;
    for (const [k, v] of this.entries) {
      if (Object.keys(v.tables).some((t) => tables.has(t))) {
        this.entries.delete(k);
        this.bytes -= v.body.length;
        n += 1;
      }
    }
    cacheBytes.set(this.bytes);
    return n;
  }

  get size(): number {
    return this.entries.size;
  }
}
