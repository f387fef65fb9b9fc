// Pure parsing and planning for controller requests: sizes, parameters, topology, and the
// response shapes. Kept apart from the handlers so every rule is a table test.
import type { Capability } from '../common/capability.js'
import { unsupportedFor } from '../common/capability.js'
import { aborted, invalid, invalidReason, outOfRange } from '../common/errors.js'
import { DEFAULT_POOL, FS_TYPES, onItsNode, type ImageFsType, type VolumeKind, type VolumeSpec, type VolumeStatus } from '../common/store/model.js'
import type { VolumeObject } from '../common/store/types.js'
import { idKind, type IdKind } from '../common/ids.js'
import { CO_KEY_PREFIX, CONTEXT, topologyOf } from '../common/keys.js'
import { GiB, MiB, wholeMiB } from '../common/sizes.js'
import type { Volume } from '../proto/gen/csi/v1/Volume.js'
import { checkMap, parseBytes, POOL_NAME } from '../common/validate.js'
import type { Requirements, Topology } from './placement.js'
import { csiContentSource } from './sources.js'
import { checkNfsParameters, checkSubDirPattern, DEFAULT_SUBDIR } from './nfs.js'
import { checkShare, parseServer } from '../common/nfs-paths.js'

/** Size of a volume whose request names no capacity. */
export const DEFAULT_SIZE = GiB

export interface Range {
  required: bigint
  limit: bigint
}

export function parseRange(raw: { required_bytes?: string; limit_bytes?: string } | null | undefined): Range {
  const required = parseBytes('capacity_range.required_bytes', raw?.required_bytes)
  const limit = parseBytes('capacity_range.limit_bytes', raw?.limit_bytes)
  if (limit > 0n && required > limit) {
    throw invalid('capacity_range', `required_bytes (${required}) exceeds limit_bytes (${limit})`)
  }
  return { required, limit }
}

export function planSize(r: Range): bigint {
  if (r.required > 0n) return r.required
  if (r.limit > 0n && r.limit < DEFAULT_SIZE) return r.limit
  return DEFAULT_SIZE
}

export function fitsRange(size: bigint, r: Range): boolean {
  return size >= r.required && (r.limit === 0n || size <= r.limit)
}

// StorageClass parameters we understand. Keys the external-provisioner adds itself
// (csi.storage.k8s.io/*) are accepted and kept; anything else is a typo worth an error.
const oneOf = (...values: string[]) => ({
  check: (v: string) => (values.includes(v) ? undefined : `${JSON.stringify(v)} is not one of ${values.join(', ')}`),
  values,
})

export const PARAMETERS: Record<string, { check: (v: string) => string | undefined; values?: string[]; help: string }> = {
  kind: {
    ...oneOf('dir', 'image', 'nfs'),
    help: 'what backs the volume: dir (a directory under the node data root), image (a sparse file with its own filesystem, attached as a loop device; the size is a hard limit) ' +
      'or nfs (a directory on an NFS export, usable from every node at once). Block volumes are always images',
  },
  server: { check: (v) => invalidReason(() => parseServer(v)), help: 'kind: nfs: the NFS server, a host name or an IP address (resolved by each node)' },
  share: { check: (v) => invalidReason(() => checkShare(v)), help: 'kind: nfs: the exported path on the server; each volume is a directory below it' },
  subDir: {
    check: checkSubDirPattern,
    help: `kind: nfs: the volume's directory below the share, a relative path that may use \${pv.name}, \${pvc.name} and \${pvc.namespace} (default ${DEFAULT_SUBDIR}); ` +
      'the last two need external-provisioner\'s --extra-create-metadata',
  },
  fsType: { ...oneOf(...FS_TYPES), help: 'the filesystem made in an image volume (default: the capability\'s fs_type, else ext4)' },
  pool: {
    check: (v) => (POOL_NAME.test(v) ? undefined : `${JSON.stringify(v)} is not a pool name (lower-case letters, digits, '-', at most 32)`),
    help: 'the node pool (named data root, --pool on the node plugin) that holds the volume; default: default',
  },
  quota: { ...oneOf('auto', 'required', 'off'), help: 'dir volumes: hold the directory to its size with a project quota: auto (where the filesystem can, else say it is unenforced), required (refuse CreateVolume where it cannot), off' },
  quotaInodes: { check: (v) => (/^[1-9][0-9]{0,17}$/.test(v) ? undefined : `${JSON.stringify(v)} is not a positive integer`), help: 'dir volumes with a quota: also limit the number of files and directories' },
  onDelete: { ...oneOf('delete', 'retain', 'archive'), help: 'what DeleteVolume does with the data: delete it, retain it in place, or archive it (renamed aside with a timestamp)' },
  onLostNode: { ...oneOf('fail', 'forget'), help: 'DeleteVolume when the volume\'s node is gone: fail (FAILED_PRECONDITION) or forget the volume (its data stays on the lost node)' },
}


export interface Parameters {
  /** Absent when the StorageClass leaves it to the access type. */
  kind: VolumeKind | undefined
  pool: string
  fsType: string | undefined
  raw: Record<string, string>
}

export function parseParameters(rawMap: unknown): Parameters {
  const raw = checkMap('parameters', rawMap)
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(CO_KEY_PREFIX)) continue
    const def = Object.hasOwn(PARAMETERS, k) ? PARAMETERS[k] : undefined
    if (!def) throw invalid(`parameters[${k}]`, `unknown parameter; known: ${Object.keys(PARAMETERS).join(', ')}`)
    const why = def.check(v)
    if (why) throw invalid(`parameters[${k}]`, why)
  }
  checkNfsParameters(raw['kind'], raw)
  return { kind: raw['kind'] as VolumeKind | undefined, pool: raw['pool'] ?? DEFAULT_POOL, fsType: raw['fsType'], raw }
}

export function checkSupported(field: string, caps: Capability[], kind: VolumeKind = 'image'): void {
  caps.forEach((c, i) => {
    const why = unsupportedFor(c, kind)
    if (why) throw invalid(`${field}[${i}]`, kind === 'dir' && c.accessType === 'block' ? `${why} (dir); use kind: image` : why)
  })
}

// The smallest image each filesystem's mkfs accepts (measured with this machine's tools,
// rounded up), and 1 MiB for a raw block image.
export const MIN_IMAGE_BYTES: Record<ImageFsType, bigint> = { '': MiB, ext4: 8n * MiB, xfs: 300n * MiB, btrfs: 128n * MiB }

// Own keys only: `in` would also accept "constructor" or "toString", and an image of that
// filesystem would then get past here.
const isImageFsType = (v: string): v is ImageFsType => Object.hasOwn(MIN_IMAGE_BYTES, v)

export interface Shape {
  kind: VolumeKind
  fsType: ImageFsType | undefined
  size: bigint
}

/**
 * Decides what a CreateVolume makes: block access means a raw image; an image's filesystem comes
 * from the parameter or the capability (they must agree), else ext4; image sizes are whole MiB
 * and at least what mkfs needs (OUT_OF_RANGE when the limit forbids that).
 */
export function planShape(params: Parameters, caps: Capability[], range: Range): Shape {
  const block = caps.some((c) => c.accessType === 'block')
  const kind: VolumeKind = params.kind ?? (block ? 'image' : 'dir')
  checkSupported('volume_capabilities', caps, kind)
  if (kind === 'image' && (params.raw['quota'] ?? 'off') !== 'off') throw invalid('parameters[quota]', 'applies to dir volumes; an image is held to its size by its own filesystem')
  const capFs = caps.find((c) => c.fsType !== '')?.fsType
  if (kind === 'dir' || kind === 'nfs') return { kind, fsType: undefined, size: planSize(range) }
  if (capFs !== undefined && params.fsType !== undefined && capFs !== params.fsType) {
    throw invalid('volume_capabilities', `fs_type ${capFs} contradicts parameters[fsType] ${params.fsType}`)
  }
  const fsType = block ? '' : (params.fsType ?? capFs ?? 'ext4')
  if (!isImageFsType(fsType)) throw invalid('volume_capabilities', `fs_type ${JSON.stringify(fsType)} is not one of ${FS_TYPES.join(', ')}`)
  const min = MIN_IMAGE_BYTES[fsType]
  let size = planSize(range)
  size = wholeMiB(size)
  if (size < min) size = min
  if (range.limit > 0n && size > range.limit) {
    throw outOfRange(`an ${fsType || 'raw'} image needs at least ${size} bytes (whole MiB, mkfs minimum ${min}); limit_bytes is ${range.limit}`)
  }
  return { kind, fsType, size }
}

type RawTopology = { segments?: Record<string, string> } | null | undefined

function parseTopologies(field: string, list: RawTopology[] | null | undefined): Topology[] {
  return (list ?? []).map((t, i) => ({ segments: checkMap(`${field}[${i}].segments`, t?.segments) }))
}

export function parseRequirements(raw: { requisite?: RawTopology[]; preferred?: RawTopology[] } | null | undefined): Requirements {
  return {
    requisite: parseTopologies('accessibility_requirements.requisite', raw?.requisite),
    preferred: parseTopologies('accessibility_requirements.preferred', raw?.preferred),
  }
}

/** The volume as CSI messages carry it; the context tells the node what to realise. */
export function csiVolume(obj: VolumeObject): Volume {
  return {
    volume_id: obj.id,
    capacity_bytes: obj.spec.capacityBytes,
    volume_context: obj.spec.nfs
      // What every node mounts; no node or pool: the data is on the export, not on a node.
      ? { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: obj.spec.nfs.server, [CONTEXT.share]: obj.spec.nfs.share, [CONTEXT.subDir]: obj.spec.nfs.subDir }
      : {
        [CONTEXT.kind]: obj.spec.kind, [CONTEXT.node]: obj.spec.node, [CONTEXT.pool]: obj.spec.pool,
        ...(obj.spec.kind === 'image' && { [CONTEXT.fsType]: obj.spec.fsType ?? '' }),
        ...(obj.status?.quota && { [CONTEXT.quota]: obj.status.quota.slice(0, 128) }),
      },
    content_source: csiContentSource(obj.spec.contentSource),
    // No topology for nfs: the CO may schedule its pods anywhere (CSI: accessible from all nodes).
    accessible_topology: onItsNode(obj.spec) ? [{ segments: topologyOf(obj.spec.node) }] : [],
  }
}

/**
 * One page of a listing sorted by id. The token is the last id returned, so the next page starts
 * after it even if that object was deleted meanwhile; a token we could not have issued (the
 * wrong kind of id) is ABORTED, as the spec asks. max_entries 0 means everything.
 */
export function paginate<T extends { id: string }>(all: T[], req: { max_entries?: unknown; starting_token?: unknown }, kind: IdKind): { page: T[]; next: string } {
  const max = Number(req.max_entries ?? 0)
  if (!Number.isInteger(max) || max < 0) throw invalid('max_entries', 'must not be negative')
  const token = typeof req.starting_token === 'string' ? req.starting_token : ''
  if (token !== '' && idKind(token) !== kind) throw aborted(`starting_token ${JSON.stringify(token)} is not a token this driver issued`)
  const from = token === '' ? 0 : firstAfter(all, token)
  const page = max > 0 ? all.slice(from, from + max) : all.slice(from)
  const more = from + page.length < all.length
  return { page, next: more && page.length > 0 ? page[page.length - 1]!.id : '' }
}

/** Index of the first object whose id sorts after token in a list sorted by id (binary search: a page is O(page), not O(list)). */
function firstAfter(all: readonly { id: string }[], token: string): number {
  let lo = 0
  let hi = all.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (all[mid]!.id > token) hi = mid
    else lo = mid + 1
  }
  return lo
}

export function volumeCondition(status: VolumeStatus | undefined, nodeKnown: boolean): { abnormal: boolean; message: string } {
  if (!nodeKnown) return { abnormal: true, message: 'the node that holds this volume is not registered' }
  if (!status) return { abnormal: true, message: 'the node has not realised this volume yet' }
  if (status.phase === 'Failed') return { abnormal: true, message: status.message ?? 'realisation failed' }
  return { abnormal: false, message: 'volume is ready on its node' }
}

export function publishedNodes(spec: VolumeSpec): string[] {
  return Object.keys(spec.publications ?? {}).sort()
}

/** Why these capabilities do not fit an existing volume, or undefined when they do. */
export function capabilitiesMatch(spec: VolumeSpec, caps: Capability[]): string | undefined {
  for (const c of caps) {
    const why = unsupportedFor(c, spec.kind)
    if (why) return why
    if (c.accessType !== spec.accessType) return `the volume has access type ${spec.accessType}, not ${c.accessType}`
  }
  return undefined
}
