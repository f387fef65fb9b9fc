// Volume capabilities as the CSI messages carry them (proto-loader: keepCase, enums as strings,
// oneofs as a discriminator field), and the pure checks both services need.
import { invalid } from './errors.js'
import { checkString } from './validate.js'

export interface CsiVolumeCapability {
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null
  block?: object | null
  access_mode?: { mode?: string } | null
  access_type?: 'mount' | 'block'
}

/** How a volume is used: mount, a filesystem; block, a raw block device. */
export const ACCESS_TYPES = ['mount', 'block'] as const
export type AccessType = (typeof ACCESS_TYPES)[number]

export interface Capability {
  accessType: AccessType
  mode: string
  fsType: string
  mountFlags: string[]
  mountGroup: string
}

// A node-local volume can be used by pods on one node only; the multi-node modes would promise
// sharing across nodes that a local disk cannot give. A volume on an NFS export is reachable from
// every node, so it takes them too.
export const SUPPORTED_MODES = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
])
export const SHARED_MODES = new Set([...SUPPORTED_MODES, 'MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER'])

const READ_ONLY_MODES = new Set(['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY'])

/** Structural check: the fields are present and well-formed. Says nothing about support. */
export function parseCapability(field: string, raw: CsiVolumeCapability | null | undefined): Capability {
  if (!raw) throw invalid(field, 'must be set')
  const mode = raw.access_mode?.mode
  if (!raw.access_mode || !mode || mode === 'UNKNOWN') throw invalid(`${field}.access_mode`, 'must be set')
  const accessType = raw.access_type ?? (raw.block ? 'block' : raw.mount ? 'mount' : undefined)
  if (accessType === undefined) throw invalid(`${field}.access_type`, 'must be mount or block')
  const m = raw.mount ?? {}
  const fsType = checkString(`${field}.mount.fs_type`, m.fs_type ?? '')
  const mountFlags = (m.mount_flags ?? []).map((f, i) => checkString(`${field}.mount.mount_flags[${i}]`, f))
  const mountGroup = checkString(`${field}.mount.volume_mount_group`, m.volume_mount_group ?? '')
  return { accessType, mode, fsType, mountFlags, mountGroup }
}

export function parseCapabilities(field: string, raw: CsiVolumeCapability[] | null | undefined): Capability[] {
  if (!raw || raw.length === 0) throw invalid(field, 'at least one capability is required')
  return raw.map((c, i) => parseCapability(`${field}[${i}]`, c))
}

/**
 * Why a capability cannot be served by a volume that takes block access or not, and is shared
 * across nodes (nfs) or node-local; undefined when it can.
 */
export function unsupportedReason(cap: Capability, supportsBlock: boolean, shared = false): string | undefined {
  if (shared && !SHARED_MODES.has(cap.mode)) return `access mode ${cap.mode} is not supported; nfs volumes accept ${[...SHARED_MODES].join(', ')}`
  if (!shared && !SUPPORTED_MODES.has(cap.mode)) {
    return `access mode ${cap.mode} is not supported by node-local volumes; they accept ${[...SUPPORTED_MODES].join(', ')} (kind: nfs takes the MULTI_NODE modes too)`
  }
  if (cap.accessType === 'block' && !supportsBlock) return 'block access is not supported by this volume kind'
  return undefined
}

/** unsupportedReason for a volume of this kind. */
export function unsupportedFor(cap: Capability, kind: 'dir' | 'image' | 'nfs'): string | undefined {
  return unsupportedReason(cap, kind === 'image', kind === 'nfs')
}

export function isReadOnlyMode(mode: string): boolean {
  return READ_ONLY_MODES.has(mode)
}
