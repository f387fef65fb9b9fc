// kind: nfs on the node (issue 16). An nfs volume is a directory on an export; every node may
// mount it, and the one the store names makes and removes the directory.
//
// - Where a volume lives comes from its volume context at stage, and from the stored spec when
//   the directory is made or removed. Both are checked again here with common/nfs-paths.ts,
//   because a PersistentVolume or a store object can be written by hand (the CVE-2026-3864 class,
//   see node/nfs-options.ts).
// - The share is walked one directory at a time through O_PATH descriptors, never following a
//   symlink: the export's content belongs to whoever can write it, and a link planted there
//   would resolve on this node, in the node plugin's mount namespace, as root.
// - A note per staged volume (<data-root>/nfs/<id>) says what was mounted, so a restarted plugin
//   finds its mounts in the kernel's table (index rebuild) and proves a mount is the volume's.
import { lookup } from 'node:dns/promises'
import { constants as fsConstants, promises as fsp, readdirSync, readFileSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import type { BigIntStatsFs } from 'node:fs'
import type { VolumeUsage } from '../proto/gen/csi/v1/VolumeUsage.js'
import path from 'node:path'
import { codeName, failedPrecondition, invalid, toCsiError, unavailable } from '../common/errors.js'
import { CONTEXT } from '../common/keys.js'
import { checkShare, checkSubDir, parseServer } from '../common/nfs-paths.js'
import type { ExportStatus } from '../common/store/model.js'
import type { ExportObject, VolumeObject } from '../common/store/types.js'
import { isId, VOLUME_KINDS } from '../common/ids.js'
import { isErrno, type MountInfo } from '../native/index.js'
import { writeFileAtomic } from '../common/store/atomic.js'
import { mkdirs, removeVolumeDir } from './datadir.js'
import type { NodeDeps } from './deps.js'
import type { Layout } from './layout.js'
import { planNfsMount, type NfsMountPlan } from './nfs-options.js'

export interface NfsWhere {
  server: string
  share: string
  subDir: string
}

/**
 * What a staged volume's note holds: where it lives, the mount source the kernel shows, and the
 * staging paths this plugin mounted it on.
 */
export interface NfsNote extends NfsWhere {
  source: string
  staging: string[]
}

/** The volume context's location, each field checked as a CreateVolume parameter would be. */
export function whereFromContext(ctx: Record<string, string> | undefined): NfsWhere {
  const field = (k: string) => `volume_context[${k}]`
  const get = (k: string) => {
    const v = ctx?.[k]
    if (v === undefined) throw invalid(field(k), 'must be set for an nfs volume (CreateVolume puts it there)')
    return v
  }
  const server = parseServer(get(CONTEXT.server), field(CONTEXT.server))
  const share = checkShare(get(CONTEXT.share), field(CONTEXT.share))
  const subDir = checkSubDir(get(CONTEXT.subDir), field(CONTEXT.subDir))
  if (subDir === '') throw invalid(field(CONTEXT.subDir), 'must name a directory below the share')
  return { server, share, subDir }
}

/** The stored spec's location, checked the same way (a store object can be edited by hand). */
export function whereFromSpec(obj: VolumeObject): NfsWhere {
  const w = obj.spec.nfs
  if (!w) throw failedPrecondition(`volume ${obj.id} is of kind nfs but its spec says nothing of where it lives`)
  const subDir = checkSubDir(w.subDir, 'spec.nfs.subDir')
  if (subDir === '') throw invalid('spec.nfs.subDir', 'must name a directory below the share')
  return { server: parseServer(w.server, 'spec.nfs.server'), share: checkShare(w.share, 'spec.nfs.share'), subDir }
}

/**
 * The server's address, resolved here because no mount.nfs helper runs (it would have done
 * this). The first address the resolver gives, as mount.nfs takes.
 */
export async function resolveServer(server: string): Promise<string> {
  try {
    return (await lookup(server, { verbatim: true })).address
  } catch (e) {
    throw unavailable(`cannot resolve the NFS server ${JSON.stringify(server)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
}

/**
 * Plans a mount of where (subDir '' for the share itself). An IPv4-mapped or plain address is
 * handed to planNfsMount, which refuses every option it does not know by name.
 */
export async function planMount(where: NfsWhere, subDir: string, options: string[]): Promise<NfsMountPlan> {
  return planNfsMount({ serverAddress: await resolveServer(where.server), share: where.share, subDir, mountOptions: options })
}

/** The error a failed NFS mount(2) stands for, naming the server: the CO retries UNAVAILABLE. */
export function mountFailure(e: unknown, plan: NfsMountPlan): unknown {
  if (isErrno(e, 'ENODEV')) return failedPrecondition(`this node's kernel has no NFS client (mount(2) of ${plan.source}: ENODEV); load the nfsv4 module`)
  if (isErrno(e, 'ENOENT')) return failedPrecondition(`${plan.source} does not exist on the server`)
  if (isErrno(e, 'EACCES') || isErrno(e, 'EPERM')) return failedPrecondition(`the server refused ${plan.source} to this node: ${(e as Error).message}`)
  for (const code of ['ETIMEDOUT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EIO']) {
    if (isErrno(e, code)) return unavailable(`the NFS server did not serve ${plan.source}: ${(e as Error).message}`)
  }
  return e
}

/**
 * Records that the volume is (about to be) mounted at staging, before the mount exists: a plugin
 * killed while mount(2) is in the kernel then finds the mount by its note.
 */
export async function noteStaging(layout: Layout, id: string, where: NfsWhere, source: string, staging: string): Promise<void> {
  const had = readNote(layout, id)
  const list = had?.source === source ? had.staging.filter((p) => p !== staging) : []
  await mkdirs(layout.nfsNotesDir())
  await writeFileAtomic(layout.nfsNoteOf(id), JSON.stringify({ ...where, source, staging: [...list, staging] } satisfies NfsNote))
}

/** Drops staging from the note once nothing is mounted there; the last one takes the note. */
export async function forgetStaging(layout: Layout, id: string, staging: string): Promise<void> {
  const had = readNote(layout, id)
  const rest = had?.staging.filter((p) => p !== staging) ?? []
  if (had && rest.length > 0) await writeFileAtomic(layout.nfsNoteOf(id), JSON.stringify({ ...had, staging: rest }))
  else await fsp.rm(layout.nfsNoteOf(id), { force: true })
}

/** Every note, by volume id; a note that does not parse is skipped (it proves nothing). */
export function readNotes(layout: Layout): Map<string, NfsNote> {
  const out = new Map<string, NfsNote>()
  let names: string[]
  try {
    names = readdirSync(layout.nfsNotesDir())
  } catch {
    return out
  }
  for (const id of names) {
    const n = isId(id, VOLUME_KINDS) ? readNote(layout, id) : undefined
    if (n) out.set(id, n)
  }
  return out
}

/** One volume's note; undefined when there is none, or it does not parse (it then proves nothing). */
export function readNote(layout: Layout, id: string): NfsNote | undefined {
  try {
    const n = JSON.parse(readFileSync(layout.nfsNoteOf(id), 'utf8')) as NfsNote
    return typeof n.source === 'string' && Array.isArray(n.staging) ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * The mounts of staged nfs volumes in a mount table: the staging mounts the notes name (with the
 * noted source), and every mount of the same superblock and source, which are the binds made from
 * them for pods. Another mount of the same export path (an administrator's, or a second plugin
 * sharing this kernel with its own superblock) is not the volume's and is left out.
 */
export function nfsMounts(table: MountInfo[], notes: Map<string, NfsNote>): Map<string, string[]> {
  const out = new Map<string, string[]>()
  const nfs = table.filter((m) => m.fsType === 'nfs4' || m.fsType === 'nfs')
  for (const [id, note] of notes) {
    const devs = new Set(nfs.filter((m) => m.source === note.source && note.staging.includes(m.mountPoint)).map((m) => m.dev))
    const points = nfs.filter((m) => m.source === note.source && devs.has(m.dev)).map((m) => m.mountPoint)
    if (points.length > 0) out.set(id, points)
  }
  return out
}

// statfs of an NFS mount asks the server; a hard mount of a server that stopped answering keeps
// asking for ever. So it runs on libuv's pool, is given this long, and one at a time per path: a
// stuck call holds one pool thread, not one per stats request.
const STATFS_WAIT_MS = 10_000
const statfsInFlight = new Map<string, Promise<BigIntStatsFs>>()

/** statfs of p on the pool, or 'late' after STATFS_WAIT_MS, or the error it failed with. */
async function boundedStatfs(p: string): Promise<BigIntStatsFs | 'late' | NodeJS.ErrnoException> {
  let call = statfsInFlight.get(p)
  if (!call) {
    call = fsp.statfs(p, { bigint: true }).finally(() => statfsInFlight.delete(p))
    statfsInFlight.set(p, call)
  }
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((res) => { timer = setTimeout(() => res('late'), STATFS_WAIT_MS) })
  return Promise.race([call, late]).catch((e: NodeJS.ErrnoException) => e).finally(() => clearTimeout(timer))
}

/**
 * NodeGetVolumeStats of a mounted nfs volume: the export's numbers (NFS has no per-volume
 * limit), and abnormal when the server does not answer in time.
 */
export async function exportStats(p: string): Promise<{ usage: VolumeUsage[]; volume_condition: { abnormal: boolean; message: string } }> {
  const fs = await boundedStatfs(p)
  if (fs === 'late') return { usage: [], volume_condition: { abnormal: true, message: `the NFS server has not answered a statfs of ${p} within ${STATFS_WAIT_MS / 1000} s` } }
  if (fs instanceof Error) return { usage: [], volume_condition: { abnormal: true, message: `statfs of ${p} failed: ${fs.code ?? fs.message}` } }
  return {
    usage: [
      { unit: 'BYTES', total: (fs.blocks * fs.bsize).toString(), available: (fs.bavail * fs.bsize).toString(), used: ((fs.blocks - fs.bfree) * fs.bsize).toString() },
      { unit: 'INODES', total: fs.files.toString(), available: fs.ffree.toString(), used: (fs.files - fs.ffree).toString() },
    ],
    volume_condition: { abnormal: false, message: 'volume is mounted and the server answers; these are the export\'s numbers: NFS has no per-volume limit unless the server enforces one' },
  }
}

/**
 * GetCapacity's measurement of an export (controller/nfs-capacity.ts asks through the store):
 * the share mounted on a work folder as for making a directory, its statfs, the mount taken
 * down. A failure is an answer too: the status carries its code and message, which the
 * controller hands on, so an unreachable server reads as UNAVAILABLE naming it.
 */
export async function measureExport(d: NodeDeps, obj: ExportObject, now: Date): Promise<ExportStatus> {
  const stamp = { observedGeneration: obj.spec.generation, updatedAt: now.toISOString() }
  try {
    // Checked as every stored location is: the object may have been written by hand.
    const where = { server: parseServer(obj.spec.server, 'spec.server'), share: checkShare(obj.spec.share, 'spec.share'), subDir: '' }
    const fs = await withShare(d, obj.id, where, obj.spec.mountOptions ?? [], (root) => boundedStatfs(root))
    if (fs === 'late') throw unavailable(`the NFS server ${where.server} has not answered a statfs of ${where.share} within ${STATFS_WAIT_MS / 1000} s`)
    if (fs instanceof Error) throw unavailable(`statfs of ${where.server}:${where.share} failed: ${fs.code ?? fs.message}`)
    return { ...stamp, totalBytes: (fs.blocks * fs.bsize).toString(), availableBytes: (fs.bavail * fs.bsize).toString() }
  } catch (e) {
    const err = toCsiError(e)
    return { ...stamp, code: codeName(err.code), message: err.message }
  }
}

/**
 * Whether this node's kernel has an NFS client, for the kinds it advertises: a node without one
 * must not be picked to make directories. /proc/filesystems cannot tell, because the module
 * loads on first use; so a mount(2) of type nfs4 is tried with an option no kernel knows. The
 * kernel looks the type up (loading the module) before it parses the options: ENODEV means no
 * client, EINVAL means one that refused the option. Nothing is ever mounted or contacted (the
 * kernel logs the unknown option once).
 */
export async function hasNfsClient(d: NodeDeps): Promise<boolean> {
  const dir = d.layout.nfsWorkDirOf('probe')
  await mkdirs(dir)
  try {
    await d.mounter.mountNfs('tscsi-probe:/', dir, 0, 'tscsi_probe', { target: d.mounter.inspect(dir)! })
    // Only a stand-in mounter gets here; take down whatever it did.
    await d.mounter.unmountFilesystem(dir).catch(() => undefined)
    return true
  } catch (e) {
    return !isErrno(e, 'ENODEV')
  } finally {
    // The work folder's parent too, if this made it: a node that never serves nfs keeps its data
    // root as it was (it runs before anything else, so nothing else is in there yet).
    await fsp.rmdir(dir).then(() => fsp.rmdir(path.dirname(dir))).catch(() => undefined)
  }
}

const WORK_OPTIONS = ['softerr', 'timeo=50', 'retrans=1']

/**
 * Runs fn with the volume's share mounted on a folder of the node's own, then unmounts it. The
 * mount is soft (softerr) with short timeouts: a server that stops answering fails the work
 * with an error instead of leaving the realiser stuck in the kernel.
 */
export async function withShare<T>(d: NodeDeps, id: string, where: NfsWhere, options: string[], fn: (root: string, plan: NfsMountPlan) => Promise<T>): Promise<T> {
  // softerr with 5 s tries, retried once: a silent server fails the work after 15 s
  // (majorTimeoutMs), inside the controller's default 30 s wait, so CreateVolume answers with
  // the server's error rather than a bare deadline.
  const plan = await planMount(where, '', [...options, ...WORK_OPTIONS])
  const dir = d.layout.nfsWorkDirOf(id)
  await mkdirs(dir)
  let info = d.mounter.inspect(dir)!
  // A mount a killed plugin left here: take it down first, so the share is mounted fresh.
  if (info.isMountRoot) {
    await d.mounter.unmountFilesystem(dir)
    info = d.mounter.inspect(dir)!
  }
  try {
    await d.mounter.mountNfs(plan.source, dir, plan.flags, plan.data, { target: info })
  } catch (e) {
    await fsp.rmdir(dir).catch(() => undefined)
    throw mountFailure(e, plan)
  }
  try {
    return await fn(dir, plan)
  } finally {
    await d.mounter.unmountFilesystem(dir)
    await fsp.rmdir(dir).catch(() => undefined)
  }
}

// O_PATH is not in Node's constants; it has the generic value on every Linux architecture
// Node runs on (native/fd.ts says more). O_NOFOLLOW and O_DIRECTORY vary, so they come from Node.
const O_PATH = 0o10000000
const OPEN_DIR = O_PATH | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW // libuv adds O_CLOEXEC

/**
 * Opens root/rel one segment at a time (O_PATH, a symlink in any segment refused), making missing
 * segments with `create`. Returns the open directory, or undefined when a segment is missing.
 * Every call goes through libuv's pool (fsp), not a synchronous syscall: on NFS each one is a
 * round trip to a server that may have stopped answering.
 */
export async function openBelow(root: string, rel: string, create: boolean): Promise<FileHandle | undefined> {
  let dir = await fsp.open(root, OPEN_DIR)
  try {
    for (const seg of rel === '' ? [] : rel.split('/')) {
      const at = `/proc/self/fd/${dir.fd}/${seg}`
      if (create) {
        await fsp.mkdir(at, { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e
        })
      }
      let next: FileHandle
      try {
        next = await fsp.open(at, OPEN_DIR)
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'ENOENT' && !create) return undefined
        if (code === 'ENOTDIR' || code === 'ELOOP') {
          throw failedPrecondition(`${JSON.stringify(seg)} in ${JSON.stringify(rel)} on the share is a symbolic link or not a directory; the driver never follows links on the server`)
        }
        throw e
      }
      await dir.close()
      dir = next
    }
    const out = dir
    dir = undefined as unknown as FileHandle
    return out
  } finally {
    await dir?.close()
  }
}

/**
 * Makes the volume's directory on the share (mode 0777, as dir volumes: pods run as any user),
 * owned by the class's uid=/gid= when it names them. Idempotent.
 */
export async function makeDir(root: string, subDir: string, owner: NfsMountPlan['owner'] = {}): Promise<void> {
  const dir = (await openBelow(root, subDir, true))!
  try {
    const at = `/proc/self/fd/${dir.fd}`
    await fsp.chmod(at, 0o777)
    // -1 keeps what is there; the magic link leads to the opened directory itself.
    if (owner.uid !== undefined || owner.gid !== undefined) await fsp.chown(at, owner.uid ?? -1, owner.gid ?? -1)
  } finally {
    await dir.close()
  }
}

/**
 * Applies onDelete to the volume's directory: delete removes it (staying on the export's
 * filesystem, links never followed), archive renames it beside itself to
 * archived-<name>-<time>, retain leaves it. Says what it did; a directory already gone is fine.
 */
export async function retireDir(root: string, subDir: string, policy: string, now: Date): Promise<string> {
  if (policy === 'retain') return `volume data retained in ${subDir} on the share (onDelete: retain)`
  const parent = path.posix.dirname(subDir)
  const leaf = path.posix.basename(subDir)
  const dir = await openBelow(root, parent === '.' ? '' : parent, false)
  if (dir === undefined) return 'volume data was already gone'
  try {
    const at = `/proc/self/fd/${dir.fd}/${leaf}`
    if (policy === 'archive') {
      const name = `archived-${leaf}-${now.toISOString().replace(/[:.]/g, '-')}`
      try {
        await fsp.rename(at, `/proc/self/fd/${dir.fd}/${name}`)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'volume data was already gone; nothing to archive'
        throw e
      }
      return `volume data archived as ${path.posix.join(parent, name)} on the share (onDelete: archive)`
    }
    await removeVolumeDir(at)
    return 'volume data removed from the share'
  } finally {
    await dir.close()
  }
}
