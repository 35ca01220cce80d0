import { open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Flushes a file or folder to disk (`r+` for a file just written, `r` for a folder). */
export async function fsyncPath(p: string, flags: 'r' | 'r+' = 'r'): Promise<void> {
  const fh = await open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `file` with `tmp` durably: fsync the temp file, rename it over the file (readers see the old
 * content or the new, never a part), fsync the folder so the rename survives a power cut.
 */
export async function replaceDurably(tmp: string, file: string): Promise<void> {
  await fsyncPath(tmp, 'r+');
  await rename(tmp, file);
  await fsyncPath(path.dirname(file));
}

/** Writes `content` to `file` atomically through `tmp` (a name in the same folder). */
export async function writeFileDurably(file: string, tmp: string, content: string | Uint8Array): Promise<void> {
  try {
    await writeFile(tmp, content);
    await replaceDurably(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}
