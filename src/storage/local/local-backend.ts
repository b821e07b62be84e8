import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend, ObjectUpload } from '../backend.js';

/** Directory for in-progress writes; its leftovers (from a killed process) are invisible to readers. */
const TMP_DIR = 'tmp';

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Maps the medium's "full" errors to the catalog's StorageFull so operators get the right article. */
export function mapStorageError(err: unknown, location: string, path: string): unknown {
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CofferError(
      'StorageFull',
      `no space left at ${location} while writing ${path}`,
      { location, path, errno: code },
      { cause: err },
    );
  }
  return err;
}

/** A repository in a local directory (also NFS/SMB mounts). */
export class LocalBackend implements Backend {
  readonly location: string;

  constructor(root: string) {
    this.location = resolve(root);
  }

  private resolvePath(path: string): string {
    const parts = path.split('/').filter((p) => p !== '');
    if (parts.some((p) => p === '.' || p === '..' || p.includes('\0')) || path.startsWith('/')) {
      throw new CofferError('InvalidRequest', `invalid storage path ${JSON.stringify(path)}`, { path });
    }
    return join(this.location, ...parts);
  }

  async save(path: string, data: Uint8Array): Promise<void> {
    const upload = await this.startUpload();
    try {
      await upload.write(data, 0);
      await upload.commit(path);
    } finally {
      await upload.abort();
    }
  }

  /** A file in tmp/, renamed into place at commit (so readers never see a partial object). */
  async startUpload(): Promise<ObjectUpload> {
    const tmpDir = join(this.location, TMP_DIR);
    const tmp = join(tmpDir, `${randomBytes(16).toString('hex')}.tmp`);
    try {
      await mkdir(tmpDir, { recursive: true });
      const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      return new LocalUpload(this, fh, tmp);
    } catch (err) {
      throw mapStorageError(err, this.location, TMP_DIR);
    }
  }

  /** @internal LocalUpload's way to the final file name. */
  finalPath(path: string): string {
    return this.resolvePath(path);
  }

  async load(path: string, range?: { offset: number; length: number }, into?: Buffer): Promise<Buffer> {
    const full = this.resolvePath(path);
    let fh;
    try {
      fh = await open(full, 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') {
        throw new CofferError(
          'RepositoryCorrupt',
          `${path} is missing from ${this.location}`,
          { path, location: this.location },
          { cause: err },
        );
      }
      throw err;
    }
    try {
      const offset = range?.offset ?? 0;
      const length = range?.length ?? (await fh.stat()).size - offset;
      const buf =
        range && into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < length) {
        throw new CofferError('RepositoryCorrupt', `${path} is shorter than expected`, {
          path,
          location: this.location,
          offset,
          length,
          got,
        });
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  async stat(path: string): Promise<{ size: number } | null> {
    try {
      const st = await stat(this.resolvePath(path));
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.resolvePath(prefix);
    const atRoot = prefix.split('/').every((p) => p === '');
    const out: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        if (atRoot && rel === '' && e.name === TMP_DIR) continue;
        const name = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) await walk(join(dir, e.name), name);
        else if (e.isFile()) out.push(name);
      }
    };
    await walk(base, '');
    return out.sort();
  }

  async remove(path: string): Promise<void> {
    await rm(this.resolvePath(path), { force: true });
  }
}

class LocalUpload implements ObjectUpload {
  private readonly writes = new Set<Promise<void>>();
  private state: 'open' | 'committing' | 'closed' = 'open';

  constructor(
    private readonly backend: LocalBackend,
    private readonly fh: FileHandle,
    private readonly tmp: string,
  ) {}

  write(data: Uint8Array, offset: number): Promise<void> {
    if (this.state !== 'open') return Promise.reject(new Error('write to a committed or aborted upload'));
    const writing = this.writeAll(data, offset);
    this.writes.add(writing);
    return writing.finally(() => this.writes.delete(writing));
  }

  private async writeAll(data: Uint8Array, offset: number): Promise<void> {
    let done = 0;
    try {
      while (done < data.length) {
        const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw mapStorageError(err, this.backend.location, this.tmp);
    }
  }

  async commit(path: string): Promise<void> {
    if (this.state !== 'open') throw new Error('upload committed or aborted already');
    this.state = 'committing';
    const final = this.backend.finalPath(path);
    try {
      await Promise.all(this.writes);
      // fsync before rename: otherwise a crash can leave the final name pointing at an empty file.
      await this.fh.sync();
      await this.close();
      await mkdir(dirname(final), { recursive: true });
      await rename(this.tmp, final);
      await syncDir(dirname(final));
    } catch (err) {
      await this.abort();
      throw mapStorageError(err, this.backend.location, path);
    }
    this.state = 'closed';
  }

  async abort(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await Promise.allSettled(this.writes);
    await this.close();
    await unlink(this.tmp).catch(() => undefined);
  }

  private closed = false;

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; some filesystems refuse fsync on directories, which is harmless.
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* best effort */
  }
}
