import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileKindOf, fingerprintNow, fsyncPath, walkDataDir, type FileFingerprint, type Logger, type TableMeta } from '@flashduck/core';
import { closeDuckDB, openDuckDB } from '@flashduck/core/duckdb';
import { computeEffects, respell, type Write } from './effects.js';
import { rewriteFiles, type TableFile } from './rewrite.js';

/** Name of the file of each table folder that holds rows whose keys no other file has. */
export const OWNED_FILE = 'flashduck-writes.parquet';
const TEMP_MARK = '.fd-tmp-';

/** A change to a data file that another process made while a batch was being prepared. */
export class ConcurrentEditError extends Error {}

/** The lease was lost before files were replaced: another applier owns the table now. */
export class LeaseLostError extends Error {}

export interface ApplyDeps {
  readonly dataDir: string;
  readonly workDir: string;
  readonly log: Logger;
  /** True while this applier still holds the table's apply lease (checked before every file replace). */
  readonly stillLeased: () => Promise<boolean>;
}

const sameFile = (a: FileFingerprint | null, b: FileFingerprint | null) =>
  a === null || b === null ? a === b : a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;


/** True when two files hold the same bytes (sizes first, then 1 MB at a time). */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  if (!sa || !sb || sa.size !== sb.size) return false;
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < sa.size; ) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, pos), fb.read(bb, 0, bb.length, pos)]);
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0 || !ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** Removes temp files a crashed applier left in a folder (hidden names: the monitor never read them). */
export async function removeStaleTemps(dir: string): Promise<number> {
  let removed = 0;
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.startsWith('.') && e.includes(TEMP_MARK)) {
      await rm(path.join(dir, e), { force: true });
      removed += 1;
    }
  }
  return removed;
}

/** The table's data files now, and the folder its own file lives in. */
export async function tableFiles(dataDir: string, table: string): Promise<{ files: TableFile[]; folder: string }> {
  const { files } = await walkDataDir(dataDir);
  const mine = files.filter((f) => f.table === table);
  const folderName = mine.map((f) => f.path.split('/')).find((parts) => parts.length > 1)?.[0] ?? table;
  return {
    folder: path.join(dataDir, folderName),
    files: mine.map((f) => ({ path: f.path, abs: path.join(dataDir, f.path), kind: fileKindOf(f.path)!, fingerprint: f.fingerprint })),
  };
}

/**
 * Applies writes (in stream order) to a table's files: each affected file is rewritten in its own
 * format to a temp file in the same folder, fsynced, and renamed over the original, then the folder is
 * fsynced. Before each replace the original must be unchanged since it was read (a manual edit is
 * never overwritten: the batch is redone on the new content) and the lease must still be held.
 * Returns the files that hold the writes with the mtime they have (a file the batch would not change is left
 * as it is and returned with its current mtime).
 */
export async function applyWrites(
  deps: ApplyDeps,
  table: string,
  writes: readonly Write[],
  meta: TableMeta | undefined,
): Promise<{ path: string; mtimeMs: number; fingerprint: FileFingerprint }[]> {
  const tableTypes = new Map((meta?.columns ?? []).map((c) => [c.name.toLowerCase(), { name: c.name, type: c.type }]));
  const spelling = new Map([...tableTypes.values()].map((c) => [c.name.toLowerCase(), c.name]));
  const changed = new Map<string, FileFingerprint>();
  // Runs of writes with the same key columns, applied one run after another.
  const runs: Write[][] = [];
  for (const w of writes) {
    const last = runs[runs.length - 1];
    const same = last && last[0]!.key.map((k) => k.toLowerCase()).join('\0') === w.key.map((k) => k.toLowerCase()).join('\0');
    const respelled: Write = { ...w, key: w.key.map((k) => spelling.get(k.toLowerCase()) ?? k), rows: w.rows.map((r) => respell(r, spelling)) };
    if (same) last.push(respelled);
    else runs.push([respelled]);
  }
  for (const run of runs) {
    const key = run[0]!.key;
    const effects = computeEffects(run, key);
    const { files, folder } = await tableFiles(deps.dataDir, table);
    for (const dir of new Set(files.map((f) => path.dirname(f.abs)))) await removeStaleTemps(dir);
    const ownedAbs = path.join(folder, OWNED_FILE);
    const owned: TableFile = files.find((f) => f.abs === ownedAbs) ?? {
      path: path.relative(deps.dataDir, ownedAbs).split(path.sep).join('/'),
      abs: ownedAbs,
      kind: fileKindOf(OWNED_FILE)!,
      fingerprint: null,
    };
    const workDir = path.join(deps.workDir, `${table}-${randomBytes(4).toString('hex')}`);
    await mkdir(workDir, { recursive: true });
    const db = await openDuckDB({ tempDir: path.join(workDir, 'spill') });
    const temps: string[] = [];
    try {
      const rewritten = await rewriteFiles(
        {
          conn: db.conn,
          workDir,
          key,
          effects,
          tableTypes,
          tempFor: async (abs) => {
            // The folder of the applier's own file may not exist yet (a new table, or a single-file table).
            await mkdir(path.dirname(abs), { recursive: true });
            const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}${TEMP_MARK}${randomBytes(4).toString('hex')}`);
            temps.push(tmp);
            return tmp;
          },
        },
        files,
        owned,
      );
      for (const r of rewritten) await fsyncPath(r.tmp, 'r+');
      const replacedDirs = new Set<string>();
      for (const r of rewritten) {
        if (!sameFile(await fingerprintNow(r.file.abs), r.file.fingerprint)) {
          throw new ConcurrentEditError(`${r.file.path} changed while the write was being prepared; applying again on its new content`);
        }
        if (!(await deps.stillLeased())) throw new LeaseLostError(`lost the apply lease of table ${table}; another applier continues`);
        // A batch that changes nothing in a file (the same upsert sent again) leaves it as it is: no new
        // version, no rebuild. The write is visible once the snapshot holds the file as it is now.
        if (r.file.fingerprint && (await sameBytes(r.tmp, r.file.abs))) {
          changed.set(r.file.path, r.file.fingerprint);
          continue;
        }
        await rename(r.tmp, r.file.abs);
        replacedDirs.add(path.dirname(r.file.abs));
        const after = await fingerprintNow(r.file.abs);
        if (after) changed.set(r.file.path, after);
      }
      for (const dir of replacedDirs) await fsyncPath(dir);
    } finally {
      closeDuckDB(db);
      for (const t of temps) await rm(t, { force: true });
      await rm(workDir, { recursive: true, force: true });
    }
  }
  return [...changed].map(([p, fp]) => ({ path: p, mtimeMs: fp.mtimeMs, fingerprint: fp }));
}
