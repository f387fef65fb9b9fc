// Pure parsing and planning for controller requests: sizes, parameters, topology, and the
// response shapes. Kept apart from the handlers so every rule is a table test.
import { createHash } from 'node:crypto'
import type { Capability } from '../common/capability.js'
import { unsupportedReason } from '../common/capability.js'
import { invalid } from '../common/errors.js'
import { DEFAULT_POOL, TOPOLOGY_KEY, type VolumeKind, type VolumeSpec, type VolumeStatus } from '../common/store/model.js'
import type { VolumeObject } from '../common/store/types.js'
import { checkMap, parseBytes, POOL_NAME } from '../common/validate.js'
import type { Requirements, Topology } from './placement.js'

export const GiB = 1024n ** 3n
/** Size of a volume whose request names no capacity. */
export const DEFAULT_SIZE = GiB

/** Volume ids are derived from the CO's name, so a repeated CreateVolume (even after a controller
 * crash) finds the same object instead of making a second one. 128 bits of SHA-256. */
export function volumeIdFor(name: string): string {
  return 'v-' + createHash('sha256').update('volume\0' + name).digest('hex').slice(0, 32)
}

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
  kind: { ...oneOf('dir'), help: 'what backs the volume: dir (a directory under the node data root)' },
  pool: {
    check: (v) => (POOL_NAME.test(v) ? undefined : `${JSON.stringify(v)} is not a pool name (lower-case letters, digits, '-', at most 32)`),
    help: 'the node pool (named data root, --pool on the node plugin) that holds the volume; default: default',
  },
  onDelete: { ...oneOf('delete', 'retain', 'archive'), help: 'what DeleteVolume does with the data: delete it, retain it in place, or archive it (renamed aside with a timestamp)' },
  onLostNode: { ...oneOf('fail', 'forget'), help: 'DeleteVolume when the volume\'s node is gone: fail (FAILED_PRECONDITION) or forget the volume (its data stays on the lost node)' },
}


export interface Parameters {
  kind: VolumeKind
  pool: string
  raw: Record<string, string>
}

export function parseParameters(rawMap: unknown): Parameters {
  const raw = checkMap('parameters', rawMap)
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('csi.storage.k8s.io/')) continue
    const def = Object.hasOwn(PARAMETERS, k) ? PARAMETERS[k] : undefined
    if (!def) throw invalid(`parameters[${k}]`, `unknown parameter; known: ${Object.keys(PARAMETERS).join(', ')}`)
    const why = def.check(v)
    if (why) throw invalid(`parameters[${k}]`, why)
  }
  return { kind: (raw['kind'] ?? 'dir') as VolumeKind, pool: raw['pool'] ?? DEFAULT_POOL, raw }
}

export function checkSupported(field: string, caps: Capability[]): void {
  caps.forEach((c, i) => {
    const why = unsupportedReason(c, false)
    if (why) throw invalid(`${field}[${i}]`, why)
  })
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
export function csiVolume(obj: VolumeObject): Record<string, unknown> {
  return {
    volume_id: obj.id,
    capacity_bytes: obj.spec.capacityBytes,
    volume_context: { 'tscsi.dev/kind': obj.spec.kind, 'tscsi.dev/node': obj.spec.node, 'tscsi.dev/pool': obj.spec.pool },
    content_source: null,
    accessible_topology: [{ segments: { [TOPOLOGY_KEY]: obj.spec.node } }],
  }
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
    const why = unsupportedReason(c, false)
    if (why) return why
    if (c.accessType !== spec.accessType) return `the volume has access type ${spec.accessType}, not ${c.accessType}`
  }
  return undefined
}
