import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * The bad-file corpus: each case is a table folder (`<name>/`) with the file under test, and for the
 * cases that must fail a `good.csv` beside it, so the table has rows that must keep being served.
 * docs/CORPUS.md lists the same cases with their defined outcomes.
 */
export type Outcome =
  /** Read as it is: these rows (and, when given, these columns) — nothing dropped or nulled. */
  | { read: { rows: number; columns?: string[]; check?: { sql: string; rows: Record<string, unknown>[] } } }
  /** Reported: an error naming `file` whose message matches; the good file's rows keep being served. */
  | { error: { file: string; message: RegExp } };

export interface CorpusCase {
  readonly name: string;
  readonly outcome: Outcome;
  /** Writes the case's files into `dir` (the table folder) and, for escapes, uses `outside`. */
  readonly make: (dir: string, outside: string) => Promise<void>;
}

const GOOD = 'id,name\n100,good\n101,also good\n';
const withGood = async (dir: string) => writeFile(path.join(dir, 'good.csv'), GOOD);
const file = (name: string, content: string | Buffer) => async (dir: string) => writeFile(path.join(dir, name), content);
/** A case that must be reported: `bad` is the file under test, beside a good file whose rows keep serving. */
const failing = (name: string, bad: string, content: string | Buffer, message: RegExp): CorpusCase => ({
  name,
  outcome: { error: { file: `${name}/${bad}`, message } },
  make: async (dir) => {
    await withGood(dir);
    await writeFile(path.join(dir, bad), content);
  },
});

export const CASES: CorpusCase[] = [
  failing('c01_ragged_extra_field', 'bad.csv', 'id,name\n1,a\n2,b,extra\n3,c\n', /column|dialect/i),
  failing('c02_ragged_missing_field', 'bad.csv', 'id,name\n1,a\n2\n3,c\n', /column|dialect/i),
  failing('c03_unterminated_quote', 'bad.csv', 'id,name\n1,"unterminated\n2,b\n', /quote|dialect|column/i),
  {
    name: 'c04_bom',
    outcome: { read: { rows: 1, columns: ['id', 'name'], check: { sql: 'SELECT id, name FROM c04_bom', rows: [{ id: 1, name: 'a' }] } } },
    make: file('bom.csv', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('id,name\n1,a\n')])),
  },
  {
    name: 'c05_latin1',
    outcome: { read: { rows: 2, check: { sql: 'SELECT name FROM c05_latin1 ORDER BY id', rows: [{ name: 'café' }, { name: 'Zürich' }] } } },
    make: file('latin1.csv', Buffer.from('id,name\n1,caf\xe9\n2,Z\xfcrich\n', 'latin1')),
  },
  {
    name: 'c06_utf16',
    outcome: { read: { rows: 2, check: { sql: 'SELECT name FROM c06_utf16 ORDER BY id', rows: [{ name: 'ünï' }, { name: 'b' }] } } },
    make: file('utf16.csv', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('id,name\n1,ünï\n2,b\n', 'utf16le')])),
  },
  {
    name: 'c07_header_only',
    outcome: { read: { rows: 0, columns: ['id', 'name', 'price'] } },
    make: file('header.csv', 'id,name,price\n'),
  },
  failing('c08_zero_bytes', 'bad.csv', '', /empty \(0 bytes\)/),
  failing('c09_bad_gzip', 'bad.csv.gz', 'this is not gzip', /gzip/i),
  failing('c10_dialect_changes_midway', 'bad.csv', 'id,name\n1,a\n2;b\n3;c\n', /column|dialect/i),
  {
    name: 'c11_bad_value_past_sample',
    outcome: { read: { rows: 30_001, check: { sql: "SELECT qty FROM c11_bad_value_past_sample WHERE id = 30000", rows: [{ qty: 'n/a' }] } } },
    make: file('late.csv', `id,qty\n${Array.from({ length: 30_000 }, (_, i) => `${i},${i}`).join('\n')}\n30000,n/a\n`),
  },
  failing('c12_truncated_parquet', 'bad.parquet', 'PAR1\x15\x04\x15', /parquet|magic|too small|file/i),
  failing('c13_corrupt_parquet', 'bad.parquet', `PAR1${'garbage'.repeat(50)}PAR1`, /parquet|metadata|footer|file/i),
  failing('c14_invalid_json', 'bad.json', '[{"id": 1, "name": "a"}, {"id": 2, "name": ]', /json|malformed|parse|unexpected/i),
  failing('c15_cut_off_ndjson', 'bad.ndjson', '{"id": 1, "name": "a"}\n{"id": 2, "na', /json|malformed|unexpected/i),
  failing('c16_cut_off_json_array', 'bad.json', '[{"id": 1, "name": "a"},\n{"id": 2, "name": "b"},', /not closed|cut off/),
  {
    name: 'c17_int_vs_text',
    outcome: { read: { rows: 4, check: { sql: "SELECT count(*) AS n FROM c17_int_vs_text WHERE qty IS NULL", rows: [{ n: 0 }] } } },
    make: async (dir) => {
      await writeFile(path.join(dir, 'ints.csv'), 'id,qty\n1,10\n2,20\n');
      await writeFile(path.join(dir, 'text.csv'), 'id,qty\n3,ten\n4,twenty\n');
    },
  },
  {
    name: 'c18_huge_single_line',
    outcome: { read: { rows: 1, check: { sql: 'SELECT length(big) AS n FROM c18_huge_single_line', rows: [{ n: 5_000_000 }] } } },
    make: file('huge.csv', `id,big\n1,${'x'.repeat(5_000_000)}\n`),
  },
  {
    name: 'c19_symlink_outside',
    outcome: { error: { file: 'c19_symlink_outside/link.csv', message: /symlink points outside the data dir/ } },
    make: async (dir, outside) => {
      await withGood(dir);
      await writeFile(path.join(outside, 'secret.csv'), 'id,name\n999,secret\n');
      await symlink(path.join(outside, 'secret.csv'), path.join(dir, 'link.csv'));
    },
  },
  {
    name: 'c20_dotdot_symlink',
    outcome: { error: { file: 'c20_dotdot_symlink/up.csv', message: /symlink points outside the data dir/ } },
    make: async (dir, outside) => {
      await withGood(dir);
      await writeFile(path.join(outside, 'up.csv'), 'id,name\n998,escaped\n');
      await symlink(path.relative(dir, path.join(outside, 'up.csv')), path.join(dir, 'up.csv'));
    },
  },
  {
    name: 'c21_fifo',
    outcome: { error: { file: 'c21_fifo/pipe.csv', message: /not a regular file/ } },
    make: async (dir) => {
      await withGood(dir);
      execFileSync('mkfifo', [path.join(dir, 'pipe.csv')]);
    },
  },
  {
    name: 'c22_awkward_names',
    outcome: { read: { rows: 7 } },
    make: async (dir) => {
      const names = [`it's "quoted".csv`, 'semi;colon.csv', 'with spaces.csv', 'new\nline.csv', 'données-é.csv', 'star*[x]?.csv', '$(touch pwned).csv'];
      for (const [i, n] of names.entries()) await writeFile(path.join(dir, n), `id,name\n${i},n${i}\n`);
    },
  },
  {
    name: 'c23_gzip',
    outcome: { read: { rows: 2 } },
    make: file('rows.csv.gz', gzipSync('id,name\n1,a\n2,b\n')),
  },
  {
    name: 'c24_duplicate_header',
    outcome: { read: { rows: 1, columns: ['a', 'a_1'] } },
    make: file('dup.csv', 'a,a\n1,2\n'),
  },
  {
    name: 'c25_json_mixed_types',
    outcome: { read: { rows: 2, check: { sql: 'SELECT count(*) AS n FROM c25_json_mixed_types WHERE v IS NULL', rows: [{ n: 0 }] } } },
    make: file('mixed.ndjson', '{"id": 1, "v": 1}\n{"id": 2, "v": "two"}\n'),
  },
  {
    name: 'c26_semicolon_csv',
    outcome: { read: { rows: 2, columns: ['id', 'name'] } },
    make: file('semi.csv', 'id;name\n1;a\n2;b\n'),
  },
  {
    name: 'c27_reader_crash',
    outcome: { error: { file: 'c27_reader_crash/crash-me.csv', message: /reader crashed on this file/ } },
    make: async (dir) => {
      await withGood(dir);
      await writeFile(path.join(dir, 'crash-me.csv'), 'id,name\n1,a\n');
    },
  },
  {
    name: 'c28_crlf_and_quotes',
    outcome: { read: { rows: 2, check: { sql: 'SELECT name FROM c28_crlf_and_quotes ORDER BY id', rows: [{ name: 'Smith, J.' }, { name: 'say "hi"' }] } } },
    make: file('crlf.csv', 'id,name\r\n1,"Smith, J."\r\n2,"say ""hi"""\r\n'),
  },
];

export async function makeCorpus(dataDir: string, outside: string): Promise<void> {
  for (const c of CASES) {
    const dir = path.join(dataDir, c.name);
    await mkdir(dir, { recursive: true });
    await c.make(dir, outside);
  }
}
