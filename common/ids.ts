// The ids this driver mints, and the one place that knows their shape: a kind letter, a dash and
// 32 hex digits (128 bits of SHA-256 over a salt naming the kind and the name the id stands for).
// Deriving an id from the CO's name is what lets a repeated Create, even after a crash, find the
// object the first one made. The fixed shape is what lets an id become a path component: no `..`,
// `/`, NUL or look-alike character can reach disk through one.
//
// The bytes hashed for each kind are pinned by test/unit-ids.test.ts. Changing them would orphan
// every volume and snapshot made before the upgrade, so a new kind gets a new salt instead.
import { createHash } from 'node:crypto'

/**
 * v: volume, s: snapshot (also a group's member), g: group snapshot, e: ephemeral inline volume,
 * n: an NFS export whose free space a node reports (GetCapacity of an nfs class).
 */
export type IdKind = 'v' | 's' | 'g' | 'e' | 'n'

/** How messages name each kind. */
export const KIND_NAMES: Readonly<Record<IdKind, string>> = { v: 'volume', s: 'snapshot', g: 'group snapshot', e: 'ephemeral volume', n: 'nfs export' }

/** Persistent and ephemeral inline volumes live side by side in a pool's volumes and images folders. */
export const VOLUME_KINDS: readonly IdKind[] = ['v', 'e']

// 128 bits in lower-case hex: the part after the kind letter and the dash.
const HEX128 = '[0-9a-f]{32}'
const ID = new RegExp(`^([vsgen])-${HEX128}$`)

/** The shape of every id of one kind, for schemas that check ids (the CRDs). */
export function idShape(kind: IdKind): RegExp {
  return new RegExp(`^${kind}-${HEX128}$`)
}

function mint(kind: IdKind, salted: string): string {
  return `${kind}-` + createHash('sha256').update(salted).digest('hex').slice(0, 32)
}

/** A volume's id, from CreateVolume's name. */
export function volumeIdFor(name: string): string {
  return mint('v', 'volume\0' + name)
}

/** A snapshot's id, from CreateSnapshot's name. */
export function snapshotIdFor(name: string): string {
  return mint('s', 'snapshot\0' + name)
}

/** A group snapshot's id, from CreateVolumeGroupSnapshot's name. */
export function groupIdFor(name: string): string {
  return mint('g', 'group\0' + name)
}

/** The snapshot a group takes of one of its volumes: a snapshot like any other, so kind s. */
export function memberIdFor(groupId: string, volumeId: string): string {
  return mint('s', `member\0${groupId}\0${volumeId}`)
}

/** The id of an ephemeral inline volume, from kubelet's volume id (an arbitrary string). */
export function ephemeralIdFor(coVolumeId: string): string {
  return mint('e', 'ephemeral\0' + coVolumeId)
}

/**
 * The id of an export as a StorageClass reaches it: server, share and the class's mount options,
 * which decide whether a node can mount it at all. Fields are NUL-separated, which none may hold.
 */
export function exportIdFor(server: string, share: string, mountOptions: readonly string[]): string {
  return mint('n', ['export', server, share, ...mountOptions].join('\0'))
}

/** The kind of one of our ids; undefined for any string we could not have minted. */
export function idKind(value: string): IdKind | undefined {
  return ID.exec(value)?.[1] as IdKind | undefined
}

/** Whether value is one of our ids and of one of these kinds. */
export function isId(value: string, kinds: readonly IdKind[]): boolean {
  const kind = idKind(value)
  return kind !== undefined && kinds.includes(kind)
}

/**
 * The id a file is named by (`<id><suffix>`), when the name is one of our ids of these kinds
 * followed by suffix; undefined for every other name, which the driver never makes.
 */
export function idInName(name: string, kinds: readonly IdKind[], suffix = ''): string | undefined {
  if (!name.endsWith(suffix)) return undefined
  const id = name.slice(0, name.length - suffix.length)
  return isId(id, kinds) ? id : undefined
}
