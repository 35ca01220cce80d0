/**
 * Statements a PostgreSQL client sends that are about the session rather than data: settings (SET, SHOW,
 * RESET), transactions (BEGIN, COMMIT, ROLLBACK: no-ops on read-only data, but reported as the client
 * expects) and housekeeping (DISCARD, DEALLOCATE). FlashDuck answers them itself; everything else goes to DuckDB.
 */

/** The settings a client reads on connect and SHOW answers; SET changes the session's copy. */
export const DEFAULT_SETTINGS: Readonly<Record<string, string>> = {
  server_version: '16.0',
  server_version_num: '160000',
  server_encoding: 'UTF8',
  client_encoding: 'UTF8',
  datestyle: 'ISO, MDY',
  timezone: 'UTC',
  intervalstyle: 'postgres',
  integer_datetimes: 'on',
  standard_conforming_strings: 'on',
  is_superuser: 'off',
  session_authorization: 'flashduck',
  application_name: '',
  search_path: '"$user", public',
  default_transaction_read_only: 'on',
  transaction_read_only: 'on',
  transaction_isolation: 'read committed',
  default_transaction_isolation: 'read committed',
  max_identifier_length: '63',
  lc_collate: 'C',
  lc_ctype: 'C',
  extra_float_digits: '1',
  statement_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  bytea_output: 'hex',
};

/** The parameters sent to a client right after it authenticates (ParameterStatus). */
export const REPORTED_SETTINGS = ['server_version', 'server_encoding', 'client_encoding', 'datestyle', 'timezone', 'intervalstyle', 'integer_datetimes', 'standard_conforming_strings', 'is_superuser', 'session_authorization', 'application_name', 'default_transaction_read_only'] as const;

/** How PostgreSQL spells a reported setting's name. */
export const SETTING_NAMES: Readonly<Record<string, string>> = { datestyle: 'DateStyle', timezone: 'TimeZone', intervalstyle: 'IntervalStyle' };

/** A statement answered by the session. */
export type LocalStatement =
  | { kind: 'set'; name: string | null; value: string | null; tag: string }
  | { kind: 'show'; name: string }
  | { kind: 'transaction'; tag: string; status: 'I' | 'T' }
  | { kind: 'tag'; tag: string; deallocate?: string };

const unquote = (v: string) => v.trim().replace(/^'(.*)'$/s, '$1').replace(/^"(.*)"$/s, '$1');
const strip = (sql: string) => sql.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*/, '').replace(/[\s;]+$/, '');

/** The session statement `sql` is, or null when DuckDB should run it. */
export function localStatement(sql: string, settings: Readonly<Record<string, string>>): LocalStatement | null {
  const s = strip(sql);
  let m: RegExpExecArray | null;
  if ((m = /^SET\s+(?:SESSION\s+|LOCAL\s+)?(?:TIME\s+ZONE\s+(.+))$/is.exec(s))) return { kind: 'set', name: 'timezone', value: unquote(m[1]!), tag: 'SET' };
  if ((m = /^SET\s+(?:SESSION\s+|LOCAL\s+)?([\w.]+)\s*(?:=|\s+TO\s+)\s*(.+)$/is.exec(s))) return { kind: 'set', name: m[1]!.toLowerCase(), value: unquote(m[2]!), tag: 'SET' };
  if (/^SET\s/i.test(s)) return { kind: 'set', name: null, value: null, tag: 'SET' };
  if ((m = /^RESET\s+([\w.]+)$/i.exec(s))) return { kind: 'set', name: m[1]!.toLowerCase() === 'all' ? null : m[1]!.toLowerCase(), value: null, tag: 'RESET' };
  if ((m = /^SHOW\s+([\w.]+)$/i.exec(s)) && m[1]!.toLowerCase() in settings) return { kind: 'show', name: m[1]!.toLowerCase() };
  if ((m = /^SHOW\s+TRANSACTION\s+ISOLATION\s+LEVEL$/i.exec(s))) return { kind: 'show', name: 'transaction_isolation' };
  if (/^(BEGIN|START\s+TRANSACTION)\b/i.test(s)) return { kind: 'transaction', tag: 'BEGIN', status: 'T' };
  if (/^(COMMIT|END)\b/i.test(s) && !/^COMMIT\s+PREPARED/i.test(s)) return { kind: 'transaction', tag: 'COMMIT', status: 'I' };
  if (/^ROLLBACK\s+(WORK\s+|TRANSACTION\s+)?TO\b/i.test(s)) return { kind: 'tag', tag: 'ROLLBACK' };
  if (/^(ROLLBACK|ABORT)\b/i.test(s)) return { kind: 'transaction', tag: 'ROLLBACK', status: 'I' };
  if (/^SAVEPOINT\b/i.test(s)) return { kind: 'tag', tag: 'SAVEPOINT' };
  if (/^RELEASE\b/i.test(s)) return { kind: 'tag', tag: 'RELEASE' };
  if (/^DISCARD\s+\w+$/i.test(s)) return { kind: 'tag', tag: `DISCARD ${s.split(/\s+/)[1]!.toUpperCase()}` };
  if ((m = /^DEALLOCATE\s+(?:PREPARE\s+)?("?[\w$]+"?)$/i.exec(s))) return { kind: 'tag', tag: 'DEALLOCATE', deallocate: unquote(m[1]!) };
  if (/^(LISTEN|UNLISTEN)\b/i.test(s)) return { kind: 'tag', tag: s.split(/\s+/)[0]!.toUpperCase() };
  return null;
}

/**
 * Splits a simple-query string into statements at semicolons outside quotes, dollar quotes and comments.
 * Empty statements are kept as '' (each gets an EmptyQueryResponse when alone).
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      // A doubled quote inside the string ('' or "") does not end it.
      let k = sql.indexOf(c, i + 1);
      while (k >= 0 && sql[k + 1] === c) k = sql.indexOf(c, k + 2);
      i = k < 0 ? sql.length : k + 1;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      continue;
    }
    if (c === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i))?.[0];
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? sql.length : end + tag.length;
        continue;
      }
    }
    if (c === ';') {
      out.push(sql.slice(start, i));
      start = i + 1;
    }
    i += 1;
  }
  const rest = sql.slice(start);
  if (rest.trim() || out.length === 0) out.push(rest);
  return out.map((s) => s.trim()).filter((s, idx, all) => s !== '' || all.length === 1);
}
