export type CheckIssueKind =
  | 'key-malformed'
  | 'config-unreadable'
  | 'index-unreadable'
  | 'pack-missing'
  | 'pack-size-mismatch'
  | 'pack-unreferenced'
  | 'pack-condemned'
  | 'condemned-unreadable'
  | 'pack-hash-mismatch'
  | 'pack-header-damaged'
  | 'pack-header-mismatch'
  | 'blob-damaged'
  | 'blob-missing'
  /** A file of a snapshot whose data lies in a damaged or missing blob: restoring it fails. */
  | 'file-damaged'
  | 'tree-unreadable'
  | 'tree-unsafe-name'
  | 'snapshot-unreadable';

export interface CheckIssue {
  kind: CheckIssueKind;
  /** 'info' is for leftovers that harm nothing (e.g. packs of a cancelled backup); only 'error' fails the check. */
  severity: 'error' | 'info';
  message: string;
  ids: {
    pack?: string;
    blob?: string;
    tree?: string;
    snapshot?: string;
    index?: string;
    key?: string;
    path?: string;
    /** Every damaged blob a file-damaged issue's file needs. */
    blobs?: string[];
  };
}

export interface CheckProgress {
  phase: 'structure' | 'snapshots' | 'data';
  packsDone: number;
  packsTotal: number;
  bytesRead: number;
}

export interface CheckReport {
  ok: boolean;
  issues: CheckIssue[];
  counts: {
    snapshots: number;
    indexFiles: number;
    packs: number;
    blobs: number;
    trees: number;
    bytesRead: number;
  };
}
