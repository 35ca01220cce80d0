import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { isInside } from './config.js';
import type { FileFingerprint } from './messages.js';
import { fileKindOf, isIgnoredName, isTableOptionsPath, tableOfPath } from './table-names.js';

/** A data file found by a scan. */
export interface ScannedFile {
  /** Path relative to the data dir, with `/` separators. */
  readonly path: string;
  readonly table: string;
  readonly fingerprint: FileFingerprint;
}

/** What a scan found: readable data files, and files refused with a reason. */
export interface ScanResult {
  readonly files: ScannedFile[];
  /** Data files that will not be read (reported in their table's metadata). */
  readonly refused: ScannedFile[];
  /** Regular files whose extension FlashDuck does not read (`notes.txt`, `orders/readme.md`), sorted. */
  readonly ignored: string[];
  /**
   * Tables whose folder changed while it was being listed: one of its folders has another mtime after the walk
   * than before its listing, an entry listed was gone when stat'ed, or a subfolder listed could not be read.
   * Their listing may lack a file that exists (moved or renamed after the listing): list them again.
   */
  readonly changing: ReadonlySet<string>;
  /** The data folder itself changed during the walk: every table, listed or not, may be missing a file. */
  readonly everyTableChanging: boolean;
}

const vanished = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' || (err as NodeJS.ErrnoException | undefined)?.code === 'ENOTDIR';

const MAX_DEPTH = 32;


/** The fingerprint of the file at `absPath` now (through a symlink, as a scan records it), or null when it is gone. */
export async function fingerprintNow(absPath: string): Promise<FileFingerprint | null> {
  try {
    return fingerprintOf(await stat(absPath));
  } catch {
    return null;
  }
}

/**
 * Identity of a file's content across a rename or a move: same inode on the same device, same size and mtime.
 * Equal identities under two names mean one file renamed (or hard-linked), not two files.
 */
export function fileIdentity(f: FileFingerprint): string {
  return `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`;
}

function fingerprintOf(s: { size: number; mtimeMs: number; ino: number; dev: number }, refused?: string): FileFingerprint {
  const fp: FileFingerprint = { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino, dev: s.dev };
  return refused ? { ...fp, refused } : fp;
}

/**
 * Lists every data file under `dataDir`: `<table>/…/<file>` at any depth, or `<table>.<ext>` at the
 * top. Skips hidden, `_`-prefixed and temp names (files and directories). Symlinks are followed only
 * while they stay inside the data dir; one that leaves it, a FIFO, socket or device is refused.
 */
/** Directory entries stat'ed at once. */
const STAT_BATCH = 64;

export async function walkDataDir(dataDir: string): Promise<ScanResult> {
  const root = await realpath(dataDir);
  const files: ScannedFile[] = [];
  const refused: ScannedFile[] = [];
  const ignored: string[] = [];
  const visited = new Set<string>();
  const changing = new Set<string>();
  let everything = false;
  const listed: { dir: string; rel: string; mtimeNs: bigint; ino: bigint }[] = [];
  const changed = (rel: string) => {
    // A data file's table, or the table a folder belongs to.
    const table = tableOfPath(rel) ?? tableOfPath(`${rel}/-`);
    if (table) changing.add(table);
  };

  const visit = async (dir: string, rel: string, depth: number): Promise<void> => {
    const real = await realpath(dir).catch(() => null);
    if (!real || visited.has(real) || depth > MAX_DEPTH) return;
    visited.add(real);
    let entries;
    try {
      // The folder's mtime before its listing: if it differs after the walk, an entry was added, removed or
      // renamed while the table was being listed (a move between two of its folders leaves no other trace).
      const s = await stat(dir, { bigint: true });
      listed.push({ dir, rel, mtimeNs: s.mtimeNs, ino: s.ino });
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      // Removed or renamed while scanning: its files may be elsewhere now. Unreadable: the next scan tries again.
      if (rel && vanished(err)) changed(rel);
      return;
    }
    const one = async (entry: (typeof entries)[number]): Promise<void> => {
      // A table folder's `_table.yaml` (its reader options) is recorded with its files: a change rebuilds the table.
      const optionsFile = isTableOptionsPath(rel ? `${rel}/${entry.name}` : entry.name);
      if (isIgnoredName(entry.name) && !optionsFile) return;
      const abs = path.join(dir, entry.name);
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      let info;
      try {
        info = await lstat(abs);
      } catch (err) {
        if (vanished(err)) changed(relPath);
        return;
      }
      let target = info;
      if (info.isSymbolicLink()) {
        const resolved = await realpath(abs).catch(() => null);
        const table = tableOfPath(relPath);
        if (!resolved || !isInside(root, resolved)) {
          if (table && (rel || fileKindOf(entry.name))) {
            refused.push({ path: relPath, table, fingerprint: fingerprintOf(info, resolved ? 'symlink points outside the data dir' : 'dangling symlink') });
          }
          return;
        }
        try {
          target = await stat(abs);
        } catch (err) {
          if (vanished(err)) changed(relPath);
          return;
        }
      }
      if (target.isDirectory()) {
        await visit(abs, relPath, depth + 1);
        return;
      }
      const kind = fileKindOf(entry.name);
      const table = tableOfPath(relPath);
      if (optionsFile && table && target.isFile()) {
        files.push({ path: relPath, table, fingerprint: fingerprintOf(target) });
        return;
      }
      if (!kind && target.isFile()) ignored.push(relPath);
      if (!kind || !table) return;
      if (!target.isFile()) {
        refused.push({ path: relPath, table, fingerprint: fingerprintOf(target, 'not a regular file (FIFO, socket or device)') });
        return;
      }
      files.push({ path: relPath, table, fingerprint: fingerprintOf(target) });
    };
    // Stat calls go to libuv's thread pool: many at once instead of one round trip per file.
    for (let i = 0; i < entries.length; i += STAT_BATCH) await Promise.all(entries.slice(i, i + STAT_BATCH).map(one));
  };

  await visit(root, '', 0);
  for (let i = 0; i < listed.length; i += STAT_BATCH) {
    await Promise.all(
      listed.slice(i, i + STAT_BATCH).map(async (d) => {
        const s = await stat(d.dir, { bigint: true }).catch(() => null);
        if (s && s.mtimeNs === d.mtimeNs && s.ino === d.ino) return;
        // The data folder itself holds single-file tables and every table's folder: a change there (a file moved
        // between `<table>.<ext>` and `<table>/…`) may touch any table.
        if (d.rel) changed(d.rel);
        else everything = true;
      }),
    );
  }
  files.sort((a, b) => a.path.localeCompare(b.path));
  refused.sort((a, b) => a.path.localeCompare(b.path));
  if (everything) for (const f of [...files, ...refused]) changing.add(f.table);
  ignored.sort();
  return { files, refused, ignored, changing, everyTableChanging: everything };
}
