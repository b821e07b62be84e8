/**
 * What an engine thread does with a request of the blob pool (blob-pool.ts): compresses and seals
 * blobs, opens and verifies them for restore and check, lists directories and reads source files
 * for backups (file-work.ts), and writes restored files, directories and symlinks
 * (restore-work.ts). A worker thread runs one (encode-worker.ts), and so does the main thread's
 * own lane when it takes a share of the work (local-lane.ts). Its only state between requests is
 * the files it has open for reading and the read contexts it was sent.
 */
import { encodeBlob, verifyPackBlobs } from '../pack/blob-codec.js';
import {
  countTree,
  FileSession,
  type ReadContext,
  readSmallFiles,
  scanDirectories,
  scanSubdirs,
} from './file-work.js';
import { buildTree, diffDirectory } from './dir-diff.js';
import { restoreEntries, restoreWrite } from './restore-work.js';
import type { PoolErrorInfo, PoolReply, PoolRequest, PoolResult, ReadContextWire } from './pool-messages.js';
import { adoptPooled, threadRecycler, wholeBuffer } from '../buffer-recycler.js';
import { fromWire, partToWire } from './transfer.js';

/** A request as posted: with buffers the main thread is done with (BlobPool.release). */
export type PostedRequest = PoolRequest & { dispose?: ArrayBuffer[] };

export class EngineRequests {
  private readonly sessions = new Map<number, FileSession>();
  private readonly contexts = new Map<number, ReadContext>();

  /** The reply to a request, and the buffers to transfer with it; never throws. */
  answer(req: PostedRequest): { reply: PoolReply; transfer: ArrayBuffer[] } {
    // Buffers the main thread is done with (BlobPool.release): kept for reuse here.
    for (const ab of req.dispose ?? []) {
      adoptPooled(ab);
      threadRecycler.give(ab);
    }
    try {
      const handled = this.handle(req);
      return { reply: { seq: req.seq, ok: true, result: handled.result }, transfer: handled.transfer };
    } catch (err) {
      return { reply: { seq: req.seq, ok: false, error: serializeError(err) }, transfer: [] };
    }
  }

  private handle(req: PoolRequest): { result: PoolResult; transfer: ArrayBuffer[] } {
    switch (req.op) {
      case 'encode': {
        const blob = encodeBlob(
          Buffer.from(req.key),
          req.type,
          fromWire(req.data, req.length),
          req.id,
          req.level,
        );
        // The plaintext is done with: its buffer serves the next read or seal on the thread that
        // made it (this one, or the reader it goes back to).
        if (!req.sendBack) threadRecycler.give(req.data);
        const data = wholeBuffer(blob.sealed);
        const plain = req.sendBack ? req.data : null;
        const result: PoolResult = {
          kind: 'blob',
          data,
          length: blob.sealed.length,
          compressed: blob.compressed,
          plain,
        };
        return { result, transfer: plain ? [data, plain] : [data] };
      }
      case 'scan':
        return { result: { kind: 'scan', dir: scanDirectories(req.path, req.ahead) }, transfer: [] };
      case 'scan-subdirs':
        return { result: { kind: 'scan', dir: scanSubdirs(req.path, req.names, req.ahead) }, transfer: [] };
      case 'count':
        return { result: { kind: 'count', count: countTree(req.path, req.ahead) }, transfer: [] };
      case 'diff': {
        const context = this.contextOf(req);
        const diffs = req.dirs.map((d) => diffDirectory(d.path, d.tree, context));
        return { result: { kind: 'diffs', diffs }, transfer: [] };
      }
      case 'build-tree': {
        const context = this.contextOf(req);
        const blob = buildTree(req.tree, context.key, req.nodes, req.drop, context.compressionLevel);
        const data = wholeBuffer(blob.sealed);
        const { id, compressed, uncompressedLength } = blob;
        const result: PoolResult = {
          kind: 'tree',
          id,
          data,
          length: blob.sealed.length,
          compressed,
          uncompressedLength,
        };
        return { result, transfer: [data] };
      }
      case 'read-small': {
        const transfer: ArrayBuffer[] = [];
        const outcomes = readSmallFiles(req.files, this.contextOf(req)).map((o) => {
          if (o.status === 'grew') return o;
          const { wire, transfer: buffers } = partToWire(o);
          transfer.push(...buffers);
          return wire;
        });
        return { result: { kind: 'small-files', outcomes }, transfer };
      }
      case 'file-open': {
        const context = this.contextOf(req);
        const opened = FileSession.open(req.path, context, req.expectedSize);
        if (!(opened instanceof FileSession)) return this.filePart(req.session, opened);
        this.sessions.set(req.session, opened);
        return this.filePart(req.session, opened.next(req.maxBytes));
      }
      case 'file-next': {
        const session = this.sessions.get(req.session);
        if (!session) throw new Error(`file session ${req.session} is not open on this thread`);
        return this.filePart(req.session, session.next(req.maxBytes));
      }
      case 'file-close':
        this.sessions.get(req.session)?.close();
        this.sessions.delete(req.session);
        return { result: { kind: 'closed' }, transfer: [] };
      case 'restore-writes': {
        const key = Buffer.from(req.key);
        const data = req.data;
        const outcomes = req.writes.map((w) => {
          if (!w.blob) return restoreWrite(key, { ...w, blob: null });
          const { ref, packId, offset, start, length, shared } = w.blob;
          const from = shared ?? data;
          if (!from) throw new Error('restore write: its sealed blob is in no buffer of the request');
          return restoreWrite(key, {
            ...w,
            blob: { ref, packId, offset, sealed: Buffer.from(from, start, length) },
          });
        });
        return { result: { kind: 'restored', outcomes, data }, transfer: data ? [data] : [] };
      }
      case 'verify-pack': {
        const damaged = verifyPackBlobs(
          Buffer.from(req.key),
          new Uint8Array(req.data),
          req.blobs,
          req.packId,
        );
        return { result: { kind: 'verified', damaged }, transfer: [] };
      }
      case 'restore-entries':
        return { result: { kind: 'entries', outcomes: restoreEntries(req.batch) }, transfer: [] };
      case 'context-release':
        this.contexts.delete(req.context);
        return { result: { kind: 'released' }, transfer: [] };
    }
  }

  /** The request's read context, kept from its first sending to this thread. */
  private contextOf(req: { context: number; contextData?: ReadContextWire }): ReadContext {
    if (req.contextData)
      this.contexts.set(req.context, { ...req.contextData, key: Buffer.from(req.contextData.key) });
    const context = this.contexts.get(req.context);
    if (!context) throw new Error(`read context ${req.context} is not known on this thread`);
    return context;
  }

  private filePart(
    session: number,
    part: ReturnType<FileSession['next']>,
  ): { result: PoolResult; transfer: ArrayBuffer[] } {
    // A session ends with its file: at end of file or on an error (the session closed the file).
    if (part.status === 'error' || part.eof) this.sessions.delete(session);
    const { wire, transfer } = partToWire(part);
    return { result: { kind: 'part', part: wire }, transfer };
  }
}

function serializeError(err: unknown): PoolErrorInfo {
  const e = err as { name?: unknown; message?: unknown; code?: unknown; context?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    code: typeof e?.code === 'string' ? e.code : null,
    context: e?.context && typeof e.context === 'object' ? (e.context as Record<string, unknown>) : {},
  };
}
