import { open } from 'node:fs/promises';
import type { Keys } from './keys.js';
import type { RedisClient } from './redis.js';

/** A blob stored as numbered chunks under one table's hash tag. */
export interface BlobRef {
  readonly table: string;
  readonly id: string;
  readonly chunks: number;
}

/**
 * Stores a file as chunks of at most `chunkBytes` (a Redis string is limited to 512 MB, and one
 * very large value stalls every client of that Redis). Reads the file piece by piece, so memory
 * stays at one chunk however large the file is. Returns the chunk count and total bytes.
 */
export async function writeBlobFromFile(
  redis: RedisClient,
  keys: Keys,
  table: string,
  id: string,
  file: string,
  chunkBytes: number,
): Promise<{ chunks: number; bytes: number }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    let index = 0;
    let offset = 0;
    do {
      const len = Math.min(chunkBytes, size - offset);
      const buf = Buffer.allocUnsafe(len);
      let read = 0;
      while (read < len) {
        const r = await fh.read(buf, read, len - read, offset + read);
        if (r.bytesRead === 0) throw new Error(`${file} shrank while it was being stored`);
        read += r.bytesRead;
      }
      await redis.set(keys.blobChunk(table, id, index), buf);
      index += 1;
      offset += len;
    } while (offset < size);
    return { chunks: index, bytes: size };
  } finally {
    await fh.close();
  }
}

/**
 * Writes a blob's chunks to a file. Throws `BlobMissingError` when a chunk is gone (the version
 * was garbage-collected: the caller should re-read the table's current metadata).
 */
export async function readBlobToFile(redis: RedisClient, keys: Keys, ref: BlobRef, file: string): Promise<number> {
  const fh = await open(file, 'w');
  let bytes = 0;
  try {
    for (let i = 0; i < ref.chunks; i++) {
      const buf = await redis.getBuffer(keys.blobChunk(ref.table, ref.id, i));
      if (!buf) throw new BlobMissingError(ref, i);
      await fh.write(buf, 0, buf.length);
      bytes += buf.length;
    }
  } finally {
    await fh.close();
  }
  return bytes;
}

/** Deletes a blob's chunks. */
export async function deleteBlob(redis: RedisClient, keys: Keys, ref: BlobRef): Promise<void> {
  const all = Array.from({ length: ref.chunks }, (_, i) => keys.blobChunk(ref.table, ref.id, i));
  for (let i = 0; i < all.length; i += 100) await redis.del(...all.slice(i, i + 100));
}

/** A chunk of a blob was not found. */
export class BlobMissingError extends Error {
  constructor(
    readonly ref: BlobRef,
    readonly index: number,
  ) {
    super(`snapshot data ${ref.table}/${ref.id} chunk ${index} of ${ref.chunks} is missing (garbage-collected or evicted)`);
    this.name = 'BlobMissingError';
  }
}

/** Encodes a blob id and chunk count as one retired-set member: "<id>:<chunks>". */
export function retiredMember(id: string, chunks: number): string {
  return `${id}:${chunks}`;
}

/** Parses a retired-set member. */
export function parseRetiredMember(table: string, member: string): BlobRef | null {
  const m = /^(.+):(\d+)$/.exec(member);
  return m ? { table, id: m[1]!, chunks: Number(m[2]) } : null;
}
