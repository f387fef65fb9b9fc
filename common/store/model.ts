// The objects the controller and the node plugins share through the store. Specs are written by
// the controller only and statuses by the node that holds the volume only (the Kubernetes
// spec/status split), so two processes never write the same document.
import type { AccessType } from '../capability.js'

/** dir: a directory; image: a sparse file holding a filesystem (or raw, for block access). */
export type VolumeKind = 'dir' | 'image'
export const FS_TYPES = ['ext4', 'xfs', 'btrfs'] as const

export interface Publication {
  readonly: boolean
  mode: string
}

export interface VolumeSpec {
  name: string
  node: string
  kind: VolumeKind
  /** The node's pool (named data root) that holds the data. */
  pool: string
  /** For image volumes: the filesystem made in the image; '' for a raw (block) image. */
  fsType?: string
  /** For dir volumes under a quota: the project id, unique among the node's volumes in the pool. */
  projectId?: number
  /** Bytes, as a decimal string: JSON has no 64-bit integers. */
  capacityBytes: string
  accessType: AccessType
  parameters: Record<string, string>
  createdAt: string
  /** Bumped on every change the node must act on; statuses echo it as observedGeneration. */
  generation: number
  /** Set once by DeleteVolume; like a deletionTimestamp, it is never taken back. */
  deletionRequestedAt?: string
  /** ControllerPublishVolume records, by node id (only with --enable-attach). */
  publications?: Record<string, Publication>
  /** What the volume's data is copied from when it is made (restore or clone). */
  contentSource?: { snapshotId: string } | { volumeId: string }
}

/** A point-in-time copy of a volume, kept on the node that holds the volume. */
export interface SnapshotSpec {
  name: string
  sourceVolumeId: string
  node: string
  pool: string
  kind: VolumeKind
  fsType?: string
  /** The source's size when the snapshot was taken: restores are at least this big. */
  sizeBytes: string
  accessType: AccessType
  createdAt: string
  generation: number
  deletionRequestedAt?: string
  /** Set for members of a volume group snapshot. */
  groupId?: string
  /**
   * A group member's whole group: every source volume id, sorted. The controller writes the
   * members one by one; the node copies them only once all are written, so one freeze covers all.
   */
  groupMembers?: string[]
}

export interface SnapshotStatus {
  /** Copying until every byte is in place; only then Ready (and ready_to_use). */
  phase: 'Copying' | 'Ready' | 'Failed' | 'Deleted'
  observedGeneration: number
  code?: string
  message?: string
  deleteBlocked?: string
  updatedAt: string
}

export type VolumePhase = 'Ready' | 'Failed' | 'Deleted'

export interface VolumeStatus {
  phase: VolumePhase
  observedGeneration: number
  /** For Failed, and for a deletion the node refused: a gRPC code name and a message. */
  code?: string
  message?: string
  /** Set when deletion was requested but refused (volume still mounted on the node). */
  deleteBlocked?: string
  /** For dir volumes: "enforced", or "unenforced: <why>" (quota: auto where the kernel cannot). */
  quota?: string
  updatedAt: string
}

export interface NodeSpec {
  topology: Record<string, string>
  maxVolumes: number
  /** Kinds of volume this node can realise. */
  kinds: VolumeKind[]
  /** Names of the pools this node serves. */
  pools: string[]
}

export interface PoolStatus {
  /** Size of the pool's filesystem, and what it can still take, in bytes (decimal strings). */
  totalBytes: string
  availableBytes: string
}

export interface NodeStatus {
  pools: Record<string, PoolStatus>
  updatedAt: string
}

/**
 * One volume's share of a node's pool, promised by a controller before it writes the volume (see
 * controller/claims.ts). A claim outlives nothing: DeleteVolume releases it, and one whose volume
 * never appeared is dropped once it is older than any create takes.
 */
export interface Claim {
  pool: string
  /** Bytes, as a decimal string. */
  bytes: string
  projectId?: number
  /** When the claim was made or last renewed (ISO time). */
  at: string
}

/** A lost volume already reported (log line and NodeLost event), so no replica reports it again. */
export interface LostMark {
  node: string
  at: string
}

/**
 * A document controllers decide on together, changed only by compare-and-swap (Store.ledger).
 * Per node (`node.<id>`) it holds the claims on that node; `lost-volumes` holds the lost-volume
 * report and which controller replica makes it.
 */
export interface LedgerDoc {
  claims?: Record<string, Claim>
  reported?: Record<string, LostMark>
  reporter?: { id: string; renewedAt: string }
  /**
   * Per pool, the highest project id ever handed out on this node. Ids are never reused: a
   * retained or archived folder keeps its id, and the kernel goes on counting its data there.
   */
  projectIds?: Record<string, number>
}

export const DEFAULT_POOL = 'default'
