// Joins Parquet files of one schema into one file by copying their row groups byte for byte and writing one footer
// that lists them all: no page is decoded or compressed again. A Parquet file is "PAR1", the column chunks of its
// row groups (and, after them, bloom filters and page indexes), the footer (a Thrift compact-encoded FileMetaData),
// the footer's length and "PAR1". Every offset in the footer is absolute, so each file's offsets move by where its
// bytes land in the joined file.
import { open, type FileHandle } from 'node:fs/promises';

const MAGIC = Buffer.from('PAR1');

// Thrift compact protocol types.
const T = { STOP: 0, TRUE: 1, FALSE: 2, BYTE: 3, I16: 4, I32: 5, I64: 6, DOUBLE: 7, BINARY: 8, LIST: 9, SET: 10, MAP: 11, STRUCT: 12 } as const;

/** A decoded Thrift value, kept with its wire type so that a struct is written back exactly as read. */
type Value = boolean | bigint | number | Buffer | ListValue | MapValue | Field[];
interface ListValue {
  readonly elementType: number;
  readonly items: Value[];
}
interface MapValue {
  readonly keyType: number;
  readonly valueType: number;
  readonly entries: [Value, Value][];
}
interface Field {
  readonly id: number;
  type: number;
  value: Value;
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  private byte(): number {
    if (this.pos >= this.buf.length) throw new ParquetFormatError('the footer ends early');
    return this.buf[this.pos++]!;
  }

  private varint(): bigint {
    let shift = 0n;
    let out = 0n;
    for (;;) {
      const b = this.byte();
      out |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return out;
      shift += 7n;
      if (shift > 70n) throw new ParquetFormatError('a varint in the footer is too long');
    }
  }

  private zigzag(): bigint {
    const v = this.varint();
    return (v >> 1n) ^ -(v & 1n);
  }

  private value(type: number): Value {
    switch (type) {
      case T.TRUE:
        return true;
      case T.FALSE:
        return false;
      case T.BYTE:
        return BigInt(this.byte() << 24 >> 24);
      case T.I16:
      case T.I32:
      case T.I64:
        return this.zigzag();
      case T.DOUBLE: {
        const v = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        return v;
      }
      case T.BINARY: {
        const n = Number(this.varint());
        if (this.pos + n > this.buf.length) throw new ParquetFormatError('a string in the footer runs past its end');
        const v = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return v;
      }
      case T.LIST:
      case T.SET: {
        const head = this.byte();
        const size = head >> 4 === 15 ? Number(this.varint()) : head >> 4;
        const elementType = head & 0x0f;
        const items: Value[] = [];
        for (let i = 0; i < size; i++) items.push(elementType === T.TRUE || elementType === T.FALSE ? this.byte() === T.TRUE : this.value(elementType));
        return { elementType, items };
      }
      case T.MAP: {
        const size = Number(this.varint());
        if (size === 0) return { keyType: 0, valueType: 0, entries: [] };
        const kv = this.byte();
        const entries: [Value, Value][] = [];
        for (let i = 0; i < size; i++) entries.push([this.value(kv >> 4), this.value(kv & 0x0f)]);
        return { keyType: kv >> 4, valueType: kv & 0x0f, entries };
      }
      case T.STRUCT:
        return this.struct();
      default:
        throw new ParquetFormatError(`unknown Thrift type ${type} in the footer`);
    }
  }

  struct(): Field[] {
    const fields: Field[] = [];
    let last = 0;
    for (;;) {
      const head = this.byte();
      const type = head & 0x0f;
      if (type === T.STOP) return fields;
      const delta = head >> 4;
      const id = delta === 0 ? Number(this.zigzag()) : last + delta;
      last = id;
      fields.push({ id, type, value: this.value(type) });
    }
  }
}

class Writer {
  private readonly parts: Buffer[] = [];
  private readonly small: number[] = [];

  private flushSmall(): void {
    if (this.small.length) this.parts.push(Buffer.from(this.small.splice(0)));
  }

  private byte(b: number): void {
    this.small.push(b & 0xff);
  }

  private varint(v: bigint): void {
    let x = v;
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }

  private zigzag(v: bigint): void {
    this.varint(v >= 0n ? v << 1n : ((-v) << 1n) - 1n);
  }

  private value(type: number, v: Value): void {
    switch (type) {
      case T.TRUE:
      case T.FALSE:
        return; // in the field header
      case T.BYTE:
        return this.byte(Number(v));
      case T.I16:
      case T.I32:
      case T.I64:
        return this.zigzag(v as bigint);
      case T.DOUBLE: {
        const b = Buffer.alloc(8);
        b.writeDoubleLE(v as number);
        this.flushSmall();
        this.parts.push(b);
        return;
      }
      case T.BINARY: {
        const b = v as Buffer;
        this.varint(BigInt(b.length));
        this.flushSmall();
        this.parts.push(b);
        return;
      }
      case T.LIST:
      case T.SET: {
        const l = v as ListValue;
        if (l.items.length < 15) this.byte((l.items.length << 4) | l.elementType);
        else {
          this.byte(0xf0 | l.elementType);
          this.varint(BigInt(l.items.length));
        }
        for (const item of l.items) {
          if (l.elementType === T.TRUE || l.elementType === T.FALSE) this.byte(item ? T.TRUE : T.FALSE);
          else this.value(l.elementType, item);
        }
        return;
      }
      case T.MAP: {
        const m = v as MapValue;
        this.varint(BigInt(m.entries.length));
        if (m.entries.length === 0) return;
        this.byte((m.keyType << 4) | m.valueType);
        for (const [k, val] of m.entries) {
          this.value(m.keyType, k);
          this.value(m.valueType, val);
        }
        return;
      }
      case T.STRUCT:
        return this.struct(v as Field[]);
      default:
        throw new ParquetFormatError(`unknown Thrift type ${type}`);
    }
  }

  struct(fields: readonly Field[]): void {
    let last = 0;
    for (const f of [...fields].sort((a, b) => a.id - b.id)) {
      const type = f.type === T.TRUE || f.type === T.FALSE ? (f.value ? T.TRUE : T.FALSE) : f.type;
      const delta = f.id - last;
      if (delta > 0 && delta <= 15) this.byte((delta << 4) | type);
      else {
        this.byte(type);
        this.zigzag(BigInt(f.id));
      }
      last = f.id;
      this.value(type, f.value);
    }
    this.byte(T.STOP);
  }

  done(): Buffer {
    this.flushSmall();
    return Buffer.concat(this.parts);
  }
}

/** A Parquet file this module cannot join (not Parquet, encrypted, or of another schema than the first). */
export class ParquetFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParquetFormatError';
  }
}

const field = (s: Field[], id: number): Field | undefined => s.find((f) => f.id === id);

/** Moves an i64 offset field of a struct by `delta` (0 stays 0: writers put 0 in the deprecated ones they leave unset). */
function shift(s: Field[], id: number, delta: bigint): void {
  const f = field(s, id);
  if (f && (f.value as bigint) > 0n) f.value = (f.value as bigint) + delta;
}

// FileMetaData: 1 version, 2 schema, 3 num_rows, 4 row_groups, 5 key_value_metadata, 6 created_by, 7 column_orders,
// 8 encryption_algorithm. RowGroup: 1 columns, 2 total_byte_size, 3 num_rows, 4 sorting_columns, 5 file_offset,
// 6 total_compressed_size, 7 ordinal. ColumnChunk: 1 file_path, 2 file_offset, 3 meta_data, 4-5 offset index,
// 6-7 column index, 8 crypto metadata. ColumnMetaData: 9 data_page_offset, 10 index_page_offset,
// 11 dictionary_page_offset, 14 bloom_filter_offset.

/** Moves every absolute offset of a row group by `delta`; drops its page indexes (their page offsets are absolute). */
function moveRowGroup(rowGroup: Field[], delta: bigint): void {
  shift(rowGroup, 5, delta);
  for (const chunk of (field(rowGroup, 1)?.value as ListValue | undefined)?.items ?? []) {
    const c = chunk as Field[];
    if (field(c, 1)) throw new ParquetFormatError('a column chunk lives in another file');
    if (field(c, 8)) throw new ParquetFormatError('the file is encrypted');
    shift(c, 2, delta);
    for (let i = c.length - 1; i >= 0; i--) if (c[i]!.id >= 4 && c[i]!.id <= 7) c.splice(i, 1);
    const meta = field(c, 3)?.value as Field[] | undefined;
    if (meta) for (const id of [9, 10, 11, 14]) shift(meta, id, delta);
  }
}

/** Reads a Parquet file's footer: the decoded FileMetaData and where the footer starts. */
async function readFooter(fh: FileHandle, file: string): Promise<{ meta: Field[]; footerStart: number }> {
  const { size } = await fh.stat();
  const tail = Buffer.alloc(8);
  if (size < 12) throw new ParquetFormatError(`${file} is too short to be Parquet`);
  await fh.read(tail, 0, 8, size - 8);
  if (!tail.subarray(4).equals(MAGIC)) throw new ParquetFormatError(`${file} does not end with PAR1 (not Parquet, or encrypted)`);
  const len = tail.readUInt32LE(0);
  const footerStart = size - 8 - len;
  if (footerStart < 4) throw new ParquetFormatError(`${file} has a footer longer than the file`);
  const footer = Buffer.alloc(len);
  await fh.read(footer, 0, len, footerStart);
  return { meta: new Reader(footer).struct(), footerStart };
}

/** The encoded schema of a FileMetaData: files join only when theirs are equal byte for byte. */
function schemaKey(meta: Field[]): Buffer {
  const w = new Writer();
  w.struct([field(meta, 2)!, ...(field(meta, 7) ? [field(meta, 7)!] : [])]);
  return w.done();
}

/**
 * Writes `files` (Parquet files of one schema, in order) into `out` as one Parquet file holding all their row groups,
 * and returns its rows (the caller fsyncs `out`). Throws `ParquetFormatError` when a file is not Parquet or has another schema than the first.
 */
export async function concatParquet(files: readonly string[], out: string): Promise<{ rows: number; rowGroups: number }> {
  if (files.length === 0) throw new ParquetFormatError('nothing to join');
  const target = await open(out, 'w');
  try {
    let pos = MAGIC.length;
    await target.write(MAGIC, 0, MAGIC.length, 0);
    let first: Field[] | null = null;
    let firstSchema: Buffer | null = null;
    const rowGroups: Value[] = [];
    let rows = 0n;
    const copy = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (const file of files) {
      const fh = await open(file, 'r');
      try {
        const { meta, footerStart } = await readFooter(fh, file);
        if (field(meta, 8)) throw new ParquetFormatError(`${file} is encrypted`);
        const schema = schemaKey(meta);
        if (!first) {
          first = meta;
          firstSchema = schema;
        } else if (!schema.equals(firstSchema!)) throw new ParquetFormatError(`${file} has another schema than ${files[0]}`);
        // Its bytes between the leading PAR1 and the footer move from offset 4 to `pos`.
        const delta = BigInt(pos - MAGIC.length);
        for (const rg of (field(meta, 4)?.value as ListValue | undefined)?.items ?? []) {
          moveRowGroup(rg as Field[], delta);
          rowGroups.push(rg);
        }
        rows += (field(meta, 3)?.value as bigint | undefined) ?? 0n;
        for (let at = MAGIC.length; at < footerStart; ) {
          const { bytesRead } = await fh.read(copy, 0, Math.min(copy.length, footerStart - at), at);
          if (bytesRead === 0) throw new ParquetFormatError(`${file} shrank while it was joined`);
          await target.write(copy, 0, bytesRead, pos);
          pos += bytesRead;
          at += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
    rowGroups.forEach((rg, i) => {
      const ordinal = field(rg as Field[], 7);
      if (ordinal) ordinal.value = BigInt(i);
    });
    const meta = first!.filter((f) => f.id !== 3 && f.id !== 4);
    meta.push({ id: 3, type: T.I64, value: rows }, { id: 4, type: T.LIST, value: { elementType: T.STRUCT, items: rowGroups } });
    const w = new Writer();
    w.struct(meta);
    const footer = w.done();
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(footer.length, 0);
    MAGIC.copy(tail, 4);
    await target.write(footer, 0, footer.length, pos);
    await target.write(tail, 0, 8, pos + footer.length);
    return { rows: Number(rows), rowGroups: rowGroups.length };
  } finally {
    await target.close();
  }
}
