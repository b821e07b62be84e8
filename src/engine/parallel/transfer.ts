/** Buffers that cross to or from a pool thread without a second copy. */
import type { FilePartOutcome, PartChunk } from './file-work.js';
import type { FilePartWire, PartChunkWire } from './pool-messages.js';

/** An ArrayBuffer holding exactly these bytes, safe to transfer (not part of Node's shared slab). */
export function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) {
    return b.buffer;
  }
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}

/** Thread side: the part with its chunks' bytes as ArrayBuffers, and the list to transfer. */
export function partToWire(part: FilePartOutcome): { wire: FilePartWire; transfer: ArrayBuffer[] } {
  if (part.status !== 'part') return { wire: part, transfer: [] };
  const transfer: ArrayBuffer[] = [];
  const chunks = part.chunks.map((c): PartChunkWire => {
    const base = { id: c.id, offset: c.offset, length: c.length };
    if (c.kind === 'plain') {
      const data = ownBuffer(c.data);
      transfer.push(data);
      return { ...base, kind: 'plain', data };
    }
    if (c.kind === 'sealed') {
      const sealed = ownBuffer(c.sealed);
      transfer.push(sealed);
      return { ...base, kind: 'sealed', sealed, compressed: c.compressed };
    }
    return { ...base, kind: 'known' };
  });
  return { wire: { ...part, chunks }, transfer };
}

/** Main side: the inverse of partToWire (no copies); `adopt` wraps buffers that may be released. */
export function partFromWire(wire: FilePartWire, adopt: (data: ArrayBuffer) => Buffer): FilePartOutcome {
  if (wire.status !== 'part') return wire;
  const chunks = wire.chunks.map((c): PartChunk => {
    if (c.kind === 'plain') return { ...c, data: Buffer.from(c.data) };
    if (c.kind === 'sealed') return { ...c, sealed: adopt(c.sealed) };
    return c;
  });
  return { ...wire, chunks };
}
