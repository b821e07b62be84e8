/**
 * Buffers that cross to or from a pool thread without a second copy. A buffer travels as its
 * whole ArrayBuffer plus the length of the view (a pooled buffer is larger than its contents:
 * buffer-recycler.ts).
 */
import { adoptPooled, wholeBuffer } from '../buffer-recycler.js';
import type { FilePartOutcome, PartChunk } from './file-work.js';
import type { FilePartWire, PartChunkWire } from './pool-messages.js';

/** The receiving side of `wholeBuffer`: a Buffer of the first `length` bytes, which stays poolable. */
export function fromWire(ab: ArrayBuffer, length: number): Buffer {
  adoptPooled(ab);
  return Buffer.from(ab, 0, length);
}

/** Thread side: the part with its chunks' bytes as ArrayBuffers, and the list to transfer. */
export function partToWire(part: FilePartOutcome): { wire: FilePartWire; transfer: ArrayBuffer[] } {
  if (part.status !== 'part') return { wire: part, transfer: [] };
  const transfer: ArrayBuffer[] = [];
  const chunks = part.chunks.map((c): PartChunkWire => {
    const base = { id: c.id, offset: c.offset, length: c.length };
    if (c.kind === 'plain') {
      const data = wholeBuffer(c.data);
      transfer.push(data);
      return { ...base, kind: 'plain', data };
    }
    if (c.kind === 'sealed') {
      const sealed = wholeBuffer(c.sealed);
      transfer.push(sealed);
      return { ...base, kind: 'sealed', sealed, sealedLength: c.sealed.length, compressed: c.compressed };
    }
    return { ...base, kind: 'known' };
  });
  return { wire: { ...part, chunks }, transfer };
}

/** Main side: the inverse of partToWire (no copies); `adopt` wraps buffers that may be released. */
export function partFromWire(
  wire: FilePartWire,
  adopt: (data: ArrayBuffer, length: number) => Buffer,
): FilePartOutcome {
  if (wire.status !== 'part') return wire;
  const chunks = wire.chunks.map((c): PartChunk => {
    if (c.kind === 'plain') return { ...c, data: adopt(c.data, c.length) };
    if (c.kind === 'sealed') {
      const { sealedLength, ...rest } = c;
      return { ...rest, sealed: adopt(c.sealed, sealedLength) };
    }
    return c;
  });
  return { ...wire, chunks };
}
