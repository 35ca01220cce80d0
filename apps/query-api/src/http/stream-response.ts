import type { ServerResponse } from 'node:http';
import { ClientGone, type ResultSink } from '../query/run-query.js';

/**
 * A result sink that holds the first `windowBytes` of a result. A result that ends within them is answered whole
 * (Content-Length, the exact row count in a header, cacheable, an error still a proper status). A longer one is
 * streamed: headers then every piece as it comes (chunked), the row count in a trailer at the end; a cut after
 * that point (the byte cap, the deadline) aborts the response, so every HTTP client sees an incomplete transfer
 * rather than a silently short file.
 */
export class WindowedResponse implements ResultSink {
  private readonly held: Uint8Array[] = [];
  private heldBytes = 0;
  private streaming = false;
  private gone = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: () => Record<string, string>,
    private readonly windowBytes: number,
  ) {
    res.once('close', () => {
      if (!res.writableFinished) this.gone = true;
    });
  }

  /** True once headers and bytes went out: the answer can no longer become an error status. */
  get started(): boolean {
    return this.streaming;
  }

  /** What was held, when the result ended within the window. */
  buffered(): Buffer {
    return Buffer.concat(this.held);
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.gone) throw new ClientGone('the client closed the connection');
    if (!this.streaming) {
      this.held.push(bytes);
      this.heldBytes += bytes.byteLength;
      if (this.heldBytes <= this.windowBytes) return;
      this.streaming = true;
      this.res.writeHead(200, { ...this.headers(), 'X-FlashDuck-Streamed': 'true', Trailer: 'X-FlashDuck-Row-Count, X-FlashDuck-Complete' });
      const first = Buffer.concat(this.held);
      this.held.length = 0;
      return await this.send(first);
    }
    return await this.send(bytes);
  }

  private async send(bytes: Uint8Array): Promise<void> {
    if (this.res.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.res.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.res.off('drain', onDrain);
        reject(new ClientGone('the client closed the connection'));
      };
      this.res.once('drain', onDrain);
      this.res.once('close', onClose);
    });
  }

  /** Ends a streamed answer with its row count. */
  finish(rowCount: number): void {
    this.res.addTrailers({ 'X-FlashDuck-Row-Count': String(rowCount), 'X-FlashDuck-Complete': 'true' });
    this.res.end();
  }

  /** Aborts a streamed answer: the client sees the transfer end without its last chunk. */
  abort(): void {
    this.res.destroy();
  }
}
