/**
 * Repository format, version 1 (restic-like; see docs/repository-format.md).
 *
 *   keys/<random id>        JSON, unencrypted: scrypt parameters + salt, and the 32-byte master
 *                           key sealed with AES-256-GCM under the scrypt-derived key. One file per
 *                           password; any of them opens the repository.
 *   config                  sealed JSON: repository id, format version, chunker sizes and the
 *                           random gear-table seed, target pack size. Its presence marks a repository.
 *   data/<2 hex>/<pack id>  packs: sealed blobs, then a sealed header (per blob: type, compressed
 *                           flag, offset, length, uncompressed length, id), then the header length
 *                           as uint32le. Pack id = SHA-256 of the pack's bytes.
 *   index/<random id>       sealed, zstd-compressed JSON: packs with their blobs. One per backup,
 *                           written after its packs and before its snapshot.
 *   pending/<snapshot id>   sealed JSON snapshot written by a backup, not yet accepted by the catalog.
 *   snapshots/<snapshot id> committed snapshots (the same bytes, moved by commitSnapshot).
 *   condemned/<random id>   sealed JSON: packs prune's mark found unneeded, and the mark time. Backups
 *                           never deduplicate against them; a later sweep deletes them.
 *   tmp/                    in-progress writes of the local backend; ignored by everything.
 *
 * "Sealed" = AES-256-GCM with the master key: 12-byte random nonce || ciphertext || 16-byte tag.
 * Blob id = SHA-256 of the plaintext; a blob is zstd-compressed before sealing when that saves
 * at least 3 %. Tree blobs are JSON node lists sorted by name; data blobs are FastCDC chunks.
 *
 * Every file name is unique (a content hash or 256 random bits), nothing is ever modified in
 * place, and the write order is packs -> index -> snapshot, so concurrent backups never conflict
 * and a crash at any point leaves at worst unreferenced packs, which check reports as info.
 */
import { randomBytes } from 'node:crypto';
import { CofferError } from '../../errors/coffer-error.js';
import type { Backend } from '../../storage/backend.js';
import { runBackup } from '../archiver/archiver.js';
import type { BackupOptions, BackupResult } from '../archiver/backup-types.js';
import { runCheck } from '../checker/checker.js';
import type { CheckProgress, CheckReport } from '../checker/check-types.js';
import type { ChunkerParams } from '../chunker/fastcdc.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import {
  DEFAULT_SCRYPT,
  kdfOf,
  type KdfParams,
  parseKeyFile,
  type ScryptParams,
  unwrapMasterKey,
  wrapMasterKey,
} from '../crypto/key-file.js';
import { openJson, sealJson } from '../crypto/sealed-json.js';
import { runPrune } from '../prune/pruner.js';
import type { PruneOptions, PruneReport } from '../prune/prune-types.js';
import { runRestore } from '../restorer/restorer.js';
import type { RestoreOptions, RestoreResult } from '../restorer/restore-types.js';
import {
  commitSnapshot,
  discardSnapshot,
  forgetSnapshots,
  listSnapshots,
  loadSnapshot,
  type Snapshot,
  type SnapshotSummary,
} from '../snapshot/snapshot.js';
import type { TreeNode } from '../tree/tree.js';
import { newConfig, parseConfig } from './repository-config.js';
import { RepositoryContext } from './repository-context.js';

export interface InitOptions {
  /** Key-derivation cost; lower it only for tests. */
  scrypt?: ScryptParams;
  /** Chunk sizes; the defaults (512 KiB / 1 MiB / 8 MiB) suit real data, tests use smaller ones. */
  chunker?: ChunkerParams;
  /** Target pack size in bytes (default 16 MiB). */
  packSize?: number;
  /** zstd level for new blobs, 0 for none (default 3); see parseCompressionLevel. */
  compression?: number;
}

export class Repository {
  private readonly ctx: RepositoryContext;

  private constructor(
    ctx: RepositoryContext,
    /** The salt and cost of the key file that opened the vault (see deriveKeyAhead). */
    readonly kdf: KdfParams,
  ) {
    this.ctx = ctx;
  }

  get id(): string {
    return this.ctx.config.id;
  }

  get backend(): Backend {
    return this.ctx.backend;
  }

  static async init(backend: Backend, password: string, opts: InitOptions = {}): Promise<Repository> {
    if (await backend.stat('config')) {
      throw new CofferError('VaultAlreadyExists', `a vault already exists at ${backend.location}`, {
        location: backend.location,
      });
    }
    const config = newConfig(opts.chunker, opts.packSize, opts.compression);
    const masterKey = randomBytes(KEY_LENGTH);
    const keyFile = await wrapMasterKey(masterKey, password, opts.scrypt ?? DEFAULT_SCRYPT);
    // Key before config: a crash in between leaves no config, so the location is still "not a vault".
    await backend.save(
      `keys/${randomBytes(32).toString('hex')}`,
      Buffer.from(JSON.stringify(keyFile, null, 2)),
    );
    await backend.save('config', sealJson(masterKey, config, false));
    return new Repository(new RepositoryContext(backend, masterKey, config), kdfOf(keyFile));
  }

  /**
   * The salt and cost of each key file of the vault at `backend`: stored unencrypted, no secret,
   * and read without a password (app/key-prefetch.ts remembers them to derive a key ahead).
   */
  static async keyParams(backend: Backend): Promise<KdfParams[]> {
    const names = await backend.list('keys');
    return Promise.all(
      names.map(async (name) => kdfOf(parseKeyFile(await backend.load(`keys/${name}`), `keys/${name}`))),
    );
  }

  static async open(backend: Backend, password: string): Promise<Repository> {
    if (!(await backend.stat('config'))) {
      throw new CofferError('VaultNotFound', `no vault at ${backend.location}`, {
        location: backend.location,
      });
    }
    const keyNames = await backend.list('keys');
    if (keyNames.length === 0) {
      throw new CofferError('RepositoryCorrupt', `the vault at ${backend.location} has no key files`, {
        location: backend.location,
      });
    }
    for (const name of keyNames) {
      const keyFile = parseKeyFile(await backend.load(`keys/${name}`), `keys/${name}`);
      const masterKey = await unwrapMasterKey(keyFile, password);
      if (!masterKey) continue;
      const config = parseConfig(openJson(masterKey, await backend.load('config'), 'config'));
      return new Repository(new RepositoryContext(backend, masterKey, config), kdfOf(keyFile));
    }
    throw new CofferError(
      'VaultPasswordInvalid',
      `the password does not open the vault at ${backend.location}`,
      {
        location: backend.location,
      },
    );
  }

  backup(opts: BackupOptions): Promise<BackupResult> {
    return runBackup(this.ctx, opts);
  }

  commitSnapshot(id: string): Promise<void> {
    return commitSnapshot(this.ctx.backend, id);
  }

  discardSnapshot(id: string): Promise<void> {
    return discardSnapshot(this.ctx.backend, id);
  }

  listSnapshots(opts: { includePending?: boolean } = {}): Promise<SnapshotSummary[]> {
    return listSnapshots(this.ctx.backend, this.ctx.key, opts.includePending ?? false);
  }

  loadSnapshot(id: string): Promise<Snapshot> {
    return loadSnapshot(this.ctx.backend, this.ctx.key, id);
  }

  /** The entries of a directory as a backup stored it (a snapshot's rootTreeId, a node's subtree). */
  async readTree(treeId: string): Promise<TreeNode[]> {
    return this.ctx.loadTree(await this.ctx.loadIndex(), treeId);
  }

  restore(opts: RestoreOptions): Promise<RestoreResult> {
    return runRestore(this.ctx, opts);
  }

  /** Removes snapshots/<id> and pending/<id> of each (full) id; their data goes at the next prune. */
  forgetSnapshots(ids: string[]): Promise<void> {
    return forgetSnapshots(this.ctx.backend, ids);
  }

  /**
   * Garbage collection in two phases, safe while backups of this repository run: mark condemns
   * packs no committed or pending snapshot needs; a sweep (this run or a later one) deletes them
   * once `backupsRunningAtHaveEnded(markTime)` is true and they are still unneeded.
   * See docs/repository-format.md, "Prune".
   */
  prune(opts: PruneOptions): Promise<PruneReport> {
    return runPrune(this.ctx, opts);
  }

  check(opts: {
    readData: boolean;
    signal?: AbortSignal;
    onProgress?: (p: CheckProgress) => void;
  }): Promise<CheckReport> {
    return runCheck(this.ctx, opts);
  }
}
