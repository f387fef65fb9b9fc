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
export async function placeFromSource(d: ControllerDeps, src: ContentSource, shape: Shape, range: Range, reqs: Requirements, accessType: string, explicitKind: boolean): Promise<SourcedPlacement> {
  const from = 'snapshotId' in src
    ? await d.store.snapshots.refresh(src.snapshotId).then((o) => o && !o.spec.deletionRequestedAt && { ...o.spec, size: o.spec.sizeBytes, what: `snapshot ${src.snapshotId}` })
    : await d.store.volumes.refresh(src.volumeId).then((o) => o && !o.spec.deletionRequestedAt && { ...o.spec, size: o.spec.capacityBytes, what: `volume ${src.volumeId}` })
  if (!from) throw notFound(`the content source ${'snapshotId' in src ? `snapshot ${src.snapshotId}` : `volume ${src.volumeId}`} does not exist`)
  if (reqs.requisite.length > 0 && !reqs.requisite.some((t) => matches(topologyOf(from.node), t))) {
    throw exhausted(`${from.what} lives on node ${from.node}, outside accessibility_requirements.requisite; a restore or clone can only be made there`)
  }
  if (explicitKind && shape.kind !== from.kind) throw invalid('parameters[kind]', `${from.what} is a ${from.kind} volume; it cannot become ${shape.kind}`)
  if (from.accessType !== accessType) throw invalid('volume_capabilities', `${from.what} has access type ${from.accessType}, not ${accessType}`)
  const srcSize = BigInt(from.size)
  let size = shape.size > srcSize ? shape.size : srcSize
  if (range.limit > 0n && size > range.limit) throw outOfRange(`${from.what} holds ${srcSize} bytes; limit_bytes ${range.limit} is smaller`)
  if (range.required === 0n) size = srcSize
  // Whether the node has room is decided when the room is claimed (claims.ts).
  return { node: from.node, pool: from.pool, kind: from.kind, fsType: from.fsType, size }
}
