import { fileIdentity, type FileFingerprint } from '@flashduck/core';

/** Changes between two manifests of one table. */
export interface ManifestDiff {
  readonly added: string[];
  readonly removed: string[];
  readonly modified: string[];
  readonly renamed: { from: string; to: string }[];
}

const same = (a: FileFingerprint, b: FileFingerprint) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev && a.refused === b.refused;


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
    for (const p of removed) removedById.set(fileIdentity(before.get(p)!), p);
    for (const p of [...added]) {
      const from = removedById.get(fileIdentity(after.get(p)!));
      if (from === undefined) continue;
      removedById.delete(fileIdentity(after.get(p)!));
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

/**
 * What to record of a listing during which the folder changed: a file moved or renamed meanwhile may be missing
 * from it although it is there, or be in it twice (listed in one folder, moved, listed again in another). So:
 * - a file listed under several names (same {@link fileIdentity}) keeps the names already recorded, or one name
 *   when none is (hard links recorded before stay, since both were listed by stable listings);
 * - a recorded file the listing lacks stays recorded, unless the listing has it under another name (renamed).
 * New and changed files are recorded at once.
 */
export function keepUnlisted(recorded: ReadonlyMap<string, FileFingerprint>, listed: ReadonlyMap<string, FileFingerprint>): Map<string, FileFingerprint> {
  const byIdentity = new Map<string, string[]>();
  for (const [p, fp] of listed) {
    const id = fileIdentity(fp);
    byIdentity.set(id, [...(byIdentity.get(id) ?? []), p]);
  }
  const out = new Map<string, FileFingerprint>();
  for (const paths of byIdentity.values()) {
    const kept = paths.length > 1 ? paths.filter((p) => recorded.has(p)) : paths;
    for (const p of kept.length ? kept : [[...paths].sort()[0]!]) out.set(p, listed.get(p)!);
  }
  for (const [p, fp] of recorded) if (!listed.has(p) && !byIdentity.has(fileIdentity(fp))) out.set(p, fp);
  return out;
}
