/**
 * ObjectUpload for a backend that can only store whole objects (S3: one PUT, or one multipart
 * upload with parts of at least 5 MiB): the bytes are gathered in one growing buffer and stored
 * with one `save` at commit, so such a backend holds a pack in memory as it always did.
 */
import type { ObjectUpload } from './backend.js';

const START_BYTES = 1024 * 1024;

export class BufferedUpload implements ObjectUpload {
  private buf: Buffer | null = Buffer.allocUnsafeSlow(START_BYTES);
  private size = 0;

  constructor(private readonly save: (path: string, data: Uint8Array) => Promise<void>) {}

  async write(data: Uint8Array, offset: number): Promise<void> {
    if (!this.buf) throw new Error('write to an upload that was committed or aborted');
    const end = offset + data.length;
    if (end > this.buf.length) {
      let room = this.buf.length;
      while (room < end) room *= 2;
      const bigger = Buffer.allocUnsafeSlow(room);
      this.buf.copy(bigger, 0, 0, this.size);
      this.buf = bigger;
    }
    this.buf.set(data, offset);
    this.size = Math.max(this.size, end);
  }

  async commit(path: string): Promise<void> {
    if (!this.buf) throw new Error('upload committed or aborted already');
    const bytes = this.buf.subarray(0, this.size);
    this.buf = null;
    await this.save(path, bytes);
  }

  async abort(): Promise<void> {
    this.buf = null;
  }
}
