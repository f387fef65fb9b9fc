// The objects the controller and the node plugins share through the store. Specs are written by
// the controller only and statuses by the node that holds the volume only (the Kubernetes
// spec/status split), so two processes never write the same document.
//
// Each object is written once, as a schema (schema.ts): its TypeScript type is inferred from
// that schema, and the CRDs of deploy/helm/tscsi/crds are generated from it (crds.ts, `npm run
// gen:crds`). A field therefore exists in both or in neither; the API server would silently
// prune a field its CRD lacks. Descriptions are what `kubectl explain` shows.
import { ACCESS_TYPES } from '../capability.js'
import { idShape } from '../ids.js'
import { POOL_NAME } from '../validate.js'
import * as s from './schema.js'

export const FS_TYPES = ['ext4', 'xfs', 'btrfs'] as const

/** A byte count, as a decimal string: JSON has no 64-bit integers. */
const DECIMAL_BYTES = /^[0-9]{1,19}$/
const bytes = (description?: string) => s.string({ pattern: DECIMAL_BYTES, description })
const time = (description?: string) => s.string({ format: 'date-time', description })
const pool = (description?: string) => s.string({ pattern: POOL_NAME, description })
// Kubernetes node names (DNS subdomains).
const nodeName = (description?: string) => s.string({ minLength: 1, maxLength: 253, description })

const volumeKind = s.enumOf(['dir', 'image', 'nfs'], {
  description: 'dir: a directory; image: a sparse file holding a filesystem (or raw, for block access); nfs: a directory on an NFS export, reachable from every node.',
})
export type VolumeKind = s.Infer<typeof volumeKind>
const accessType = s.enumOf(ACCESS_TYPES, { description: 'mount: used as a filesystem; block: used as a raw block device.' })
const fsType = s.enumOf(['', ...FS_TYPES], { description: 'For image volumes: the filesystem made in the image; empty for a raw (block) image.' })
export type ImageFsType = s.Infer<typeof fsType>
const generation = s.integer({ minimum: 1, description: 'Bumped on every change the node must act on; statuses echo it as observedGeneration.' })
const deletionRequestedAt = time('Set once by the delete call; like a deletionTimestamp, it is never taken back.')

const publication = s.object({
  readonly: s.boolean({ description: 'Published read-only.' }),
  mode: s.string({ description: 'The CSI access mode it was published with.' }),
})
export type Publication = s.Infer<typeof publication>

const nfsLocation = (what: string) => s.object({
  server: s.string({ minLength: 1, maxLength: 253, description: 'The NFS server: a host name or an IP address, as the StorageClass gave it.' }),
  share: s.string({ minLength: 1, maxLength: 1024, description: 'The exported path on the server.' }),
  subDir: s.string({ minLength: 1, maxLength: 1024, description: `The ${what}'s directory below the share, relative.` }),
  mountOptions: s.optional(s.arrayOf(s.string({ maxLength: 256 }), {
    description: "The StorageClass's mountOptions at creation: the node that makes or removes the directory mounts the share with them.",
  })),
}, { description: `For nfs ${what}s: where the data lives on the export. The node in \`node\` makes (and removes) the directory; every node may mount it.` })

export const volumeSpec = s.object({
  name: s.string({ minLength: 1, maxLength: 128, description: 'The CSI volume name (the PV name).' }),
  node: nodeName('The node that holds the data.'),
  kind: volumeKind,
  pool: pool("The node's pool (named data root) that holds the data."),
  fsType: s.optional(fsType),
  projectId: s.optional(s.integer({ minimum: 1, description: "For dir volumes under a quota: the project id, unique among the node's volumes in the pool." })),
  capacityBytes: bytes('Size in bytes.'),
  accessType,
  parameters: s.mapOf(s.string({ maxLength: 128 }), { description: 'The StorageClass parameters the volume was created with.' }),
  createdAt: time(),
  generation,
  deletionRequestedAt: s.optional(deletionRequestedAt),
  publications: s.optional(s.mapOf(publication, { description: 'ControllerPublishVolume records, by node id (only with --enable-attach).' })),
  nfs: s.optional(nfsLocation('volume')),
  contentSource: s.optional(s.oneKeyOf({
    snapshotId: s.string({ pattern: idShape('s') }),
    volumeId: s.string({ pattern: idShape('v') }),
  }, { description: "What the volume's data is copied from when it is made: a snapshot (restore) or a volume (clone)." })),
})
export type VolumeSpec = s.Infer<typeof volumeSpec>

/**
 * Whether a volume's data lives on its node (dir, image), so that the node's room, topology and
 * presence matter to it; an nfs volume's lives on a server every node reaches, and its node is
 * only the one asked to make or remove the directory.
 */
export function onItsNode(spec: Pick<VolumeSpec, 'kind'>): boolean {
  return spec.kind !== 'nfs'
}

/** A point-in-time copy of a volume, kept on the node that holds the volume. */
export const snapshotSpec = s.object({
  name: s.string({ minLength: 1, maxLength: 256, description: 'The CSI snapshot name.' }),
  sourceVolumeId: s.string({ pattern: idShape('v') }),
  node: nodeName('The node that holds the source volume and the copy.'),
  pool: pool(),
  kind: volumeKind,
  fsType: s.optional(fsType),
  sizeBytes: bytes("The source's size when the snapshot was taken: restores are at least this big."),
  accessType,
  createdAt: time(),
  generation,
  deletionRequestedAt: s.optional(deletionRequestedAt),
  groupId: s.optional(s.string({ pattern: idShape('g'), description: 'Set for members of a volume group snapshot.' })),
  nfs: s.optional(nfsLocation('snapshot')),
  groupMembers: s.optional(s.arrayOf(s.string({ pattern: idShape('v') }), {
    description: "A group member's whole group: every source volume id, sorted. The controller writes the members one by one; " +
      'the node copies them only once all are written, so one freeze covers all.',
  })),
})
export type SnapshotSpec = s.Infer<typeof snapshotSpec>

// What every status carries.
const observedGeneration = s.integer({ minimum: 0, description: 'The spec generation this status answers.' })
const code = s.string({ description: 'For Failed, and for a deletion the node refused: a gRPC code name.' })
const message = s.string({ description: 'What went wrong, for a person.' })
const deleteBlocked = s.string({ description: 'Set when deletion was requested but refused, and why (for volumes: still mounted on the node).' })
const updatedAt = time()

export const snapshotStatus = s.object({
  phase: s.enumOf(['Copying', 'Ready', 'Failed', 'Deleted'], { description: 'Copying until every byte is in place; only then Ready (and ready_to_use).' }),
  observedGeneration,
  code: s.optional(code),
  message: s.optional(message),
  deleteBlocked: s.optional(deleteBlocked),
  updatedAt,
})
export type SnapshotStatus = s.Infer<typeof snapshotStatus>

const volumePhase = s.enumOf(['Ready', 'Failed', 'Deleted'])
export type VolumePhase = s.Infer<typeof volumePhase>

export const volumeStatus = s.object({
  phase: volumePhase,
  observedGeneration,
  code: s.optional(code),
  message: s.optional(message),
  deleteBlocked: s.optional(deleteBlocked),
  quota: s.optional(s.string({ description: 'For dir volumes: "enforced", or "unenforced: <why>" (quota: auto where the kernel cannot).' })),
  updatedAt,
})
export type VolumeStatus = s.Infer<typeof volumeStatus>

export const nodeSpec = s.object({
  topology: s.mapOf(s.string(), { description: 'The topology segments CSI reports for this node.' }),
  maxVolumes: s.integer({ minimum: 0, description: 'The most volumes the node takes (CSI max_volumes_per_node; 0: no limit).' }),
  kinds: s.arrayOf(volumeKind, { description: 'Kinds of volume this node can realise.' }),
  pools: s.arrayOf(pool(), { description: 'Names of the pools this node serves.' }),
})
export type NodeSpec = s.Infer<typeof nodeSpec>

const poolStatus = s.object({
  totalBytes: bytes("Size of the pool's filesystem."),
  availableBytes: bytes('What the pool can still take.'),
})
export type PoolStatus = s.Infer<typeof poolStatus>

export const nodeStatus = s.object({
  pools: s.mapOf(poolStatus, { description: 'Capacity by pool name.' }),
  updatedAt,
})
export type NodeStatus = s.Infer<typeof nodeStatus>

/**
 * One volume's share of a node's pool, promised by a controller before it writes the volume (see
 * controller/claims.ts). A claim outlives nothing: DeleteVolume releases it, and one whose volume
 * never appeared is dropped once it is older than any create takes.
 */
const claim = s.object({
  pool: pool(),
  bytes: bytes(),
  projectId: s.optional(s.integer({ minimum: 1 })),
  at: time('When the claim was made or last renewed.'),
})
export type Claim = s.Infer<typeof claim>

/** A lost volume already reported (log line and NodeLost event), so no replica reports it again. */
const lostMark = s.object({ node: nodeName(), at: time() })
export type LostMark = s.Infer<typeof lostMark>

/**
 * A document controllers decide on together, changed only by compare-and-swap (Store.ledger).
 * Per node (`node.<id>`) it holds the claims on that node; `lost-volumes` holds the lost-volume
 * report and which controller replica makes it.
 */
export const ledgerDoc = s.object({
  claims: s.optional(s.mapOf(claim, { description: "Every volume's claim on the node's pools, by volume id." })),
  reported: s.optional(s.mapOf(lostMark, { description: 'The volumes already reported as lost, by volume id.' })),
  reporter: s.optional(s.object({
    id: nodeName('The controller replica that reports lost volumes.'),
    renewedAt: time(),
  })),
  projectIds: s.optional(s.mapOf(s.integer({ minimum: 1 }), {
    description: 'Per pool, the highest project id ever handed out on this node. Ids are never reused: a retained or archived folder ' +
      'keeps its id, and the kernel goes on counting its data there.',
  })),
})
export type LedgerDoc = s.Infer<typeof ledgerDoc>

/**
 * An NFS export a StorageClass names, whose free space GetCapacity reports "as seen by a node
 * that mounts it". The controller never mounts anything, so it asks: it writes the spec (bumping
 * generation for a fresh answer) and the node in `node` mounts the share, takes its statfs and
 * writes the status. One object per server, share and mount options; it holds no data.
 */
export const exportSpec = s.object({
  node: nodeName('The node asked to measure the export: any node that serves nfs volumes.'),
  server: s.string({ minLength: 1, maxLength: 253, description: 'The NFS server, as the StorageClass gave it.' }),
  share: s.string({ minLength: 1, maxLength: 1024, description: 'The exported path on the server.' }),
  mountOptions: s.optional(s.arrayOf(s.string({ maxLength: 256 }), { description: "The StorageClass's mountOptions, which the node mounts the share with." })),
  generation,
})
export type ExportSpec = s.Infer<typeof exportSpec>

export const exportStatus = s.object({
  observedGeneration,
  totalBytes: s.optional(bytes('Size of the filesystem behind the export, as statfs on the node reported it.')),
  availableBytes: s.optional(bytes('What an unprivileged writer can still put on it (statfs f_bavail).')),
  code: s.optional(code),
  message: s.optional(message),
  updatedAt,
})
export type ExportStatus = s.Infer<typeof exportStatus>

export const DEFAULT_POOL = 'default'
