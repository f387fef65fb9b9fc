// CreateVolume from a content source (restore from a snapshot, clone of a volume). The new
// volume goes where the source's data is, as big as the source at least, of the same kind.
import { exhausted, invalid, notFound, outOfRange } from '../common/errors.js'
import { topologyOf } from '../common/keys.js'
import type { VolumeSpec } from '../common/store/model.js'
import { requireId } from '../common/validate.js'
import type { VolumeContentSource, VolumeContentSource__Output } from '../proto/gen/csi/v1/VolumeContentSource.js'
import type { ControllerDeps } from './deps.js'
import { matches, type Requirements } from './placement.js'
import type { Range, Shape } from './request.js'

export type ContentSource = NonNullable<VolumeSpec['contentSource']>

/** The request's volume_content_source, or undefined. */
export function parseContentSource(raw: VolumeContentSource__Output | null | undefined): ContentSource | undefined {
  if (!raw) return undefined
  if (raw.snapshot) return { snapshotId: requireId('volume_content_source.snapshot.snapshot_id', raw.snapshot.snapshot_id, 's') }
  if (raw.volume) return { volumeId: requireId('volume_content_source.volume.volume_id', raw.volume.volume_id, 'v') }
  throw invalid('volume_content_source', 'must name a snapshot or a volume')
}

export function sameSource(a: ContentSource | undefined, b: ContentSource | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null)
}

export function csiContentSource(s: ContentSource | undefined): VolumeContentSource | null {
  if (!s) return null
  return 'snapshotId' in s ? { snapshot: { snapshot_id: s.snapshotId } } : { volume: { volume_id: s.volumeId } }
}

export interface SourcedPlacement {
  node: string
  pool: string
  kind: VolumeSpec['kind']
  fsType: VolumeSpec['fsType']
  size: bigint
}

/**
 * Where and how big a volume made from source must be. Errors follow the spec: a missing source
 * is NOT_FOUND; a topology that excludes the source's node is RESOURCE_EXHAUSTED (the
 * provisioner then reschedules instead of waiting forever); a limit below the source's size is
 * OUT_OF_RANGE.
 */
/** The source as the store has it now (NOT_FOUND when it is gone or going), and its size. */
async function findSource(d: ControllerDeps, src: ContentSource) {
  const from = 'snapshotId' in src
    ? await d.store.snapshots.refresh(src.snapshotId).then((o) => o && !o.spec.deletionRequestedAt && { ...o.spec, size: o.spec.sizeBytes, what: `snapshot ${src.snapshotId}` })
    : await d.store.volumes.refresh(src.volumeId).then((o) => o && !o.spec.deletionRequestedAt && { ...o.spec, size: o.spec.capacityBytes, what: `volume ${src.volumeId}` })
  if (!from) throw notFound(`the content source ${'snapshotId' in src ? `snapshot ${src.snapshotId}` : `volume ${src.volumeId}`} does not exist`)
  return from
}

/** The size a restore or clone gets: the larger of the request's and the source's, within the limit. */
function sourcedSize(what: string, srcSize: bigint, want: bigint, range: Range): bigint {
  const size = want > srcSize ? want : srcSize
  if (range.limit > 0n && size > range.limit) throw outOfRange(`${what} holds ${srcSize} bytes; limit_bytes ${range.limit} is smaller`)
  return range.required === 0n ? srcSize : size
}

/**
 * A restore or clone into an nfs volume at `where`: the source must be nfs data on the same
 * export, where a node that mounts it can copy it. Returns the new volume's size.
 */
export async function nfsSourceSize(d: ControllerDeps, src: ContentSource, where: { server: string; share: string }, want: bigint, range: Range, accessType: string): Promise<bigint> {
  const from = await findSource(d, src)
  if (!from.nfs) throw invalid('volume_content_source', `${from.what} holds ${from.kind} data on node ${from.node}; an nfs volume is restored or cloned only from nfs data`)
  if (from.nfs.server !== where.server || from.nfs.share !== where.share) {
    throw invalid('volume_content_source', `${from.what} is on ${from.nfs.server}:${from.nfs.share}, not on this class's ${where.server}:${where.share}; the copy is made within one export`)
  }
  if (from.accessType !== accessType) throw invalid('volume_capabilities', `${from.what} has access type ${from.accessType}, not ${accessType}`)
  return sourcedSize(from.what, BigInt(from.size), want, range)
}

export async function placeFromSource(d: ControllerDeps, src: ContentSource, shape: Shape, range: Range, reqs: Requirements, accessType: string, explicitKind: boolean): Promise<SourcedPlacement> {
  const from = await findSource(d, src)
  if (from.kind === 'nfs') throw invalid('volume_content_source', `${from.what} holds nfs data; it is restored or cloned only into an nfs volume on the same export`)
  if (reqs.requisite.length > 0 && !reqs.requisite.some((t) => matches(topologyOf(from.node), t))) {
    throw exhausted(`${from.what} lives on node ${from.node}, outside accessibility_requirements.requisite; a restore or clone can only be made there`)
  }
  if (explicitKind && shape.kind !== from.kind) throw invalid('parameters[kind]', `${from.what} is a ${from.kind} volume; it cannot become ${shape.kind}`)
  if (from.accessType !== accessType) throw invalid('volume_capabilities', `${from.what} has access type ${from.accessType}, not ${accessType}`)
  const size = sourcedSize(from.what, BigInt(from.size), shape.size, range)
  // Whether the node has room is decided when the room is claimed (claims.ts).
  return { node: from.node, pool: from.pool, kind: from.kind, fsType: from.fsType, size }
}
