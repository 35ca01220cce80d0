import type { FileFingerprint } from '@flashduck/core';

/** Changes between two manifests of one table. */
export interface ManifestDiff {
  readonly added: string[];
  readonly removed: string[];
  readonly modified: string[];
  readonly renamed: { from: string; to: string }[];
}

const same = (a: FileFingerprint, b: FileFingerprint) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev && a.refused === b.refused;

/** Identity of file content across a rename: same inode on the same device, same size and mtime. */
const identity = (f: FileFingerprint) => `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`;

/**
 * Compares a table's recorded manifest with what is on disk now. A path whose size, mtime or inode
 * changed is modified (content is never judged by name alone); a removed path whose inode reappears
 * under a new name with the same size and mtime is a rename.
 */
export function diffManifests(
  before: ReadonlyMap<string, FileFingerprint>,
  after: ReadonlyMap<string, FileFingerprint>,
): ManifestDiff {
  const added: string[] = [];
  const removed: string[] = [];
  const modified: string[] = [];
  for (const [p, fp] of after) {
    const old = before.get(p);
    if (!old) added.push(p);
    else if (!same(old, fp)) modified.push(p);
  }
  for (const p of before.keys()) if (!after.has(p)) removed.push(p);

  const renamed: { from: string; to: string }[] = [];
  if (added.length && removed.length) {
    const removedById = new Map<string, string>();
    for (const p of removed) removedById.set(identity(before.get(p)!), p);
    for (const p of [...added]) {
      const from = removedById.get(identity(after.get(p)!));
      if (from === undefined) continue;
      removedById.delete(identity(after.get(p)!));
      renamed.push({ from, to: p });
      added.splice(added.indexOf(p), 1);
      removed.splice(removed.indexOf(from), 1);
    }
  }
  return { added, removed, modified, renamed };
}

/** True when a diff has no change. */
export function isEmptyDiff(d: ManifestDiff): boolean {
  return !d.added.length && !d.removed.length && !d.modified.length && !d.renamed.length;
}
