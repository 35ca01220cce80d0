import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/** Where a stored part's bytes are: its id and chunk count. */
export interface StoredPart {
  readonly id: string;
  readonly chunks: number;
}

/**
 * The content address of a part: a hash of its table's name, the chunk size it is stored in and its bytes. The
 * same rows stored twice for one table (a build retried, a file renamed back) are one part; two tables never share
 * one, so collecting a table's parts needs only that table's versions; and cachers set to different chunk sizes
 * (a changed `CACHER_CHUNK_BYTES`, a fleet half upgraded) store copies of their own, so one never writes its
 * chunks over another's.
 */
export async function partIdOf(table: string, file: string, chunkBytes: number): Promise<string> {
  const hash = createHash('sha256').update(table).update('\0').update(`chunks of ${chunkBytes}`).update('\0');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex').slice(0, 32);
}

/**
 * Stores a part file as chunks of at most `chunkBytes` (a Redis string is limited to 512 MB, and one very large
 * value stalls every client of that Redis) under its content address. Reads the file piece by piece into one
 * buffer, so memory stays at one chunk however large the file is. A part already stored whole is not written again
 * (`written` is 0 then). `claim` runs once the address is known, before anything is checked or written (the
 * cacher marks the part as provisional there, so collection leaves it alone).
 */
export async function storePart(
  redis: RedisClient,
  keys: Keys,
  table: string,
  file: string,
  chunkBytes: number,
  claim: (part: StoredPart) => Promise<unknown> = async () => undefined,
): Promise<{ id: string; chunks: number; bytes: number; written: number }> {
  const id = await partIdOf(table, file, chunkBytes);
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const chunks = Math.max(1, Math.ceil(size / chunkBytes));
    await claim({ id, chunks });
    if (await isPartStored(redis, keys, { id, chunks })) {
      return { id, chunks, bytes: size, written: 0 };
    }
    const buf = Buffer.allocUnsafe(Math.min(chunkBytes, size));
    let offset = 0;
    for (let index = 0; index < chunks; index++) {
      const len = Math.min(chunkBytes, size - offset);
      let read = 0;
      while (read < len) {
        const r = await fh.read(buf, read, len - read, offset + read);
        if (r.bytesRead === 0) throw new Error(`${file} shrank while it was being stored`);
        read += r.bytesRead;
      }
      await redis.set(keys.partChunk(id, index), len === buf.length ? buf : buf.subarray(0, len));
      offset += len;
    }
    return { id, chunks, bytes: size, written: size };
  } finally {
    await fh.close();
  }
}

/**
 * Whether Redis holds a part whole: its last chunk is written last and its first deleted first, so both present
 * means every chunk is.
 */
export async function isPartStored(redis: RedisClient, keys: Keys, part: StoredPart): Promise<boolean> {
  return (await redis.exists(keys.partChunk(part.id, part.chunks - 1))) === 1 && (await redis.exists(keys.partChunk(part.id, 0))) === 1;
}

/**
 * Writes a part's chunks to a file and returns the bytes fetched. Throws `PartMissingError` when a chunk is gone
 * (the part was collected: the caller should re-read the table's current version).
 */
export async function fetchPart(redis: RedisClient, keys: Keys, part: StoredPart, file: string): Promise<number> {
  const fh = await open(file, 'w');
  let bytes = 0;
  try {
    for (let i = 0; i < part.chunks; i++) {
      const buf = await redis.getBuffer(keys.partChunk(part.id, i));
      if (!buf) throw new PartMissingError(part, i);
      await fh.write(buf, 0, buf.length);
      bytes += buf.length;
    }
  } finally {
    await fh.close();
  }
  return bytes;
}

/** Deletes a part's chunks (one DEL per chunk: they share a slot, but one call per key keeps each step small). */
export async function deletePart(redis: RedisClient, keys: Keys, part: StoredPart): Promise<void> {
  const all = Array.from({ length: part.chunks }, (_, i) => keys.partChunk(part.id, i));
  for (let i = 0; i < all.length; i += 100) await redis.del(...all.slice(i, i + 100));
}

/** A chunk of a part was not found. */
export class PartMissingError extends Error {
  constructor(
    readonly part: StoredPart,
    readonly index: number,
  ) {
    super(`part ${part.id} chunk ${index} of ${part.chunks} is missing (collected or evicted)`);
    this.name = 'PartMissingError';
  }
}

/** Encodes a part id and chunk count as one retired-set member: "<id>:<chunks>". */
export function retiredMember(part: StoredPart): string {
  return `${part.id}:${part.chunks}`;
}

/** Parses a retired-set member. */
export function parseRetiredMember(member: string): StoredPart | null {
  const m = /^([0-9a-f]+):(\d+)$/.exec(member);
  return m ? { id: m[1]!, chunks: Number(m[2]) } : null;
}
