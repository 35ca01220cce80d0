/**
 * Backend messages of the PostgreSQL protocol v3 that FlashDuck sends once a client is authenticated (the
 * startup, TLS and authentication exchange is pg-gateway's), and the readers of the frontend messages it
 * answers. Each message: a type byte, an Int32 length (itself included), the body.
 */

/** Builds one message body; `frame` adds the type byte and the length. */
export class Writer {
  private parts: Buffer[] = [];
  private size = 0;

  int8(n: number): this {
    return this.push(Buffer.from([n & 0xff]));
  }
  int16(n: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(n);
    return this.push(b);
  }
  int32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(n);
    return this.push(b);
  }
  cstring(s: string): this {
    return this.push(Buffer.from(`${s}\0`, 'utf8'));
  }
  bytes(b: Uint8Array): this {
    return this.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }
  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }
  frame(type: string): Buffer {
    const head = Buffer.allocUnsafe(5);
    head.write(type, 0, 'latin1');
    head.writeInt32BE(this.size + 4, 1);
    return Buffer.concat([head, ...this.parts], this.size + 5);
  }
}

/** A column of a RowDescription. */
export interface FieldDescription {
  readonly name: string;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  /** 0 text, 1 binary. */
  readonly format: 0 | 1;
}

export const rowDescription = (fields: readonly FieldDescription[]) => {
  const w = new Writer().int16(fields.length);
  for (const f of fields) w.cstring(f.name).int32(0).int16(0).int32(f.typeOid).int16(f.typeSize).int32(f.typeModifier).int16(f.format);
  return w.frame('T');
};

/** One row: each value's bytes, or null for SQL NULL. */
export const dataRow = (values: readonly (Buffer | null)[]) => {
  const w = new Writer().int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.frame('D');
};

export const commandComplete = (tag: string) => new Writer().cstring(tag).frame('C');
export const emptyQueryResponse = () => new Writer().frame('I');
export const parseComplete = () => new Writer().frame('1');
export const bindComplete = () => new Writer().frame('2');
export const closeComplete = () => new Writer().frame('3');
export const noData = () => new Writer().frame('n');
export const portalSuspended = () => new Writer().frame('s');
export const parameterDescription = (oids: readonly number[]) => {
  const w = new Writer().int16(oids.length);
  for (const o of oids) w.int32(o);
  return w.frame('t');
};
export const readyForQuery = (status: 'I' | 'T' | 'E') => new Writer().int8(status.charCodeAt(0)).frame('Z');
export const parameterStatus = (name: string, value: string) => new Writer().cstring(name).cstring(value).frame('S');
export const backendKeyData = (pid: number, secret: number) => new Writer().int32(pid).int32(secret).frame('K');

/** An ErrorResponse (or NoticeResponse with `type` N): severity, SQLSTATE, message, and optional detail/hint. */
export function errorResponse(e: { severity?: 'ERROR' | 'FATAL'; code: string; message: string; detail?: string; hint?: string; position?: number }, type: 'E' | 'N' = 'E'): Buffer {
  const severity = e.severity ?? 'ERROR';
  const w = new Writer().int8(0x53).cstring(severity).int8(0x56).cstring(severity).int8(0x43).cstring(e.code).int8(0x4d).cstring(e.message);
  if (e.detail) w.int8(0x44).cstring(e.detail);
  if (e.hint) w.int8(0x48).cstring(e.hint);
  if (e.position) w.int8(0x50).cstring(String(e.position));
  return w.int8(0).frame(type);
}

/** Reads a frontend message body. */
export class Reader {
  private offset = 0;
  constructor(private readonly buf: Buffer) {}
  int16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  byte(): number {
    return this.buf[this.offset++]!;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.offset);
    if (end < 0) throw new Error('a string in the message has no terminator');
    const s = this.buf.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
}
