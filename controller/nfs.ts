// kind: nfs at the controller (issue 16): where on the export a volume lives, and which node
// makes its directory. The controller never mounts anything, so it only plans: the subDir pattern
// becomes a path checked like any other (common/nfs-paths.ts), and a node that serves nfs
// volumes is asked to make the directory through the store, as for every kind.
import { createHash } from 'node:crypto'
import { failedPrecondition, invalid, invalidReason } from '../common/errors.js'
import { CO_KEY_PREFIX, PV_NAME_KEY } from '../common/keys.js'
import { checkShare, checkSubDir, parseServer } from '../common/nfs-paths.js'
import type { VolumeSpec } from '../common/store/model.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'

export type NfsLocation = NonNullable<VolumeSpec['nfs']>

/** The subDir pattern's variables and the provisioner's keys (--extra-create-metadata) they read. */
const VARIABLES: Record<string, string> = {
  'pv.name': PV_NAME_KEY,
  'pvc.name': `${CO_KEY_PREFIX}pvc/name`,
  'pvc.namespace': `${CO_KEY_PREFIX}pvc/namespace`,
}
// Named as every other StorageClass parameter is in an error (controller/request.ts).
const SERVER_FIELD = 'parameters[server]'
const SHARE_FIELD = 'parameters[share]'
const SUBDIR_FIELD = 'parameters[subDir]'

/** Where a share's snapshots live (node/nfs-snapshots.ts); no volume's directory may start so. */
export const SNAPSHOTS_DIR = '.tscsi-snapshots'

/** A snapshot of the volume at vol: a directory of its own under the share's snapshots folder. */
export function snapshotLocation(vol: NfsLocation, snapshotId: string): NfsLocation {
  return { ...vol, subDir: `${SNAPSHOTS_DIR}/${snapshotId}` }
}

/**
 * The class's mountOptions, which kubernetes puts in every capability's mount_flags alike: the
 * node that makes a directory or measures the export mounts the share with them.
 */
export function classMountOptions(caps: readonly { mountFlags: readonly string[] }[]): string[] {
  return [...(caps.find((c) => c.mountFlags.length > 0)?.mountFlags ?? [])]
}

/** One directory per PersistentVolume, as seed 002 has it. */
export const DEFAULT_SUBDIR = '${pv.name}'

// Parameters only kind: nfs takes, and those it refuses (they mean something on a node's disk).
export const NFS_ONLY = ['server', 'share', 'subDir'] as const
const NOT_FOR_NFS = ['pool', 'fsType', 'quota', 'quotaInodes'] as const

/**
 * Checks a subDir pattern on its own, so a StorageClass with a bad one fails every CreateVolume
 * with the same clear error, whatever the claim's names: each variable is tried as a plain name.
 */
export function checkSubDirPattern(pattern: string): string | undefined {
  return invalidReason(() => checkVolumeDir(substitute(pattern, () => 'x')))
}

/** A volume's directory: a normal relative path, outside the names the driver keeps (SNAPSHOTS_DIR). */
function checkVolumeDir(subDir: string): string {
  checkSubDir(subDir, SUBDIR_FIELD)
  if (subDir.split('/')[0]!.startsWith('.tscsi')) throw invalid(SUBDIR_FIELD, `${JSON.stringify(subDir)} starts with ".tscsi", which the driver keeps for itself (${SNAPSHOTS_DIR})`)
  return subDir
}

function substitute(pattern: string, valueOf: (name: string) => string): string {
  const out = pattern.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    if (!Object.hasOwn(VARIABLES, name)) throw invalid(SUBDIR_FIELD, `unknown variable \${${name}}; known: ${Object.keys(VARIABLES).map((v) => `\${${v}}`).join(', ')}`)
    return valueOf(name)
  })
  if (out.includes('${')) throw invalid(SUBDIR_FIELD, `${JSON.stringify(pattern)} has an unclosed "\${"`)
  if (out === '') throw invalid(SUBDIR_FIELD, 'must not be empty: a volume needs a directory of its own')
  return out
}

/**
 * Checks the parameters that only make sense with kind: nfs (or not with it): server and share
 * are required there and refused elsewhere. Messages name the parameter.
 */
export function checkNfsParameters(kind: string | undefined, raw: Record<string, string>): void {
  if (kind !== 'nfs') {
    for (const k of NFS_ONLY) if (raw[k] !== undefined) throw invalid(`parameters[${k}]`, 'applies to kind: nfs only')
    return
  }
  for (const k of NOT_FOR_NFS) if (raw[k] !== undefined) throw invalid(`parameters[${k}]`, 'does not apply to kind: nfs (the export holds the data, not a node pool)')
  if (raw['server'] === undefined) throw invalid('parameters[server]', 'kind: nfs needs the NFS server (a host name or an address)')
  if (raw['share'] === undefined) throw invalid('parameters[share]', 'kind: nfs needs the exported path (share)')
}

/**
 * Where CreateVolume's volume lives on the export: the pattern filled from the provisioner's keys.
 * ${pv.name} falls back to the CSI name (it is the PersistentVolume's name in Kubernetes), the
 * others need external-provisioner's --extra-create-metadata. A value must be one plain
 * directory name: a claim called ".." or "a/b" cannot steer the path.
 */
export function resolveLocation(raw: Record<string, string>, volumeName: string): Omit<NfsLocation, 'mountOptions'> {
  const server = parseServer(raw['server'] ?? '', SERVER_FIELD)
  const share = checkShare(raw['share'] ?? '', SHARE_FIELD)
  const subDir = substitute(raw['subDir'] ?? DEFAULT_SUBDIR, (name) => {
    const key = VARIABLES[name]!
    const value = raw[key] ?? (name === 'pv.name' ? volumeName : undefined)
    if (value === undefined) throw invalid(SUBDIR_FIELD, `\${${name}} needs the parameter ${key}, which external-provisioner adds with --extra-create-metadata`)
    if (value === '' || value === '.' || value === '..' || value.includes('/')) {
      throw invalid(SUBDIR_FIELD, `\${${name}} is ${JSON.stringify(value)}, which is not one plain directory name`)
    }
    return value
  })
  return { server, share, subDir: checkVolumeDir(subDir) }
}

/** Whether one location lies inside the other (or is it): deleting one would delete the other's data. */
function overlaps(a: Pick<NfsLocation, 'server' | 'share' | 'subDir'>, b: Pick<NfsLocation, 'server' | 'share' | 'subDir'>): boolean {
  if (a.server !== b.server) return false
  const pa = `${a.share === '/' ? '' : a.share}/${a.subDir}`
  const pb = `${b.share === '/' ? '' : b.share}/${b.subDir}`
  return pa === pb || pa.startsWith(pb + '/') || pb.startsWith(pa + '/')
}

/**
 * Refuses a location another volume's directory contains or lies in. Server names are compared
 * as written: the same server by two names is not caught here.
 */
export function checkNoOverlap(id: string, where: Pick<NfsLocation, 'server' | 'share' | 'subDir'>, volumes: VolumeObject[]): void {
  const other = volumes.find((v) => v.id !== id && v.spec.nfs && overlaps(v.spec.nfs, where))
  if (other) {
    throw invalid(SUBDIR_FIELD, `${where.server}:${where.share} ${JSON.stringify(where.subDir)} overlaps volume ${other.id}'s directory ` +
      `${JSON.stringify(other.spec.nfs!.subDir)}; give each volume its own directory (the default pattern is ${DEFAULT_SUBDIR})`)
  }
}

/**
 * The node that makes (or removes) an nfs volume's directory: any node that serves nfs volumes
 * will do, so the choice spreads volumes over them by id (a repeat picks the same one). `not`
 * leaves a node out: one that is gone.
 */
export function actingNode(id: string, nodes: NodeObject[], not?: string): string {
  const able = nodes.filter((n) => n.spec.kinds.includes('nfs') && n.id !== not).map((n) => n.id).sort()
  if (able.length === 0) throw failedPrecondition('no registered node serves nfs volumes: a node plugin must be running on a node whose kernel has an NFS client (a plugin without one does not offer nfs, and logs why)')
  const h = createHash('sha256').update(id).digest().readUInt32BE(0)
  return able[h % able.length]!
}
