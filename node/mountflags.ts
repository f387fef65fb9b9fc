// Pure planning of per-mount flags for bind mounts: the capability's mount_flags and the
// readonly bit become mount_setattr attributes (or, on kernels without it, MS_* bits for a bind
// remount), and a live mount's ST_* bits (statvfs) are compared with what a repeated
// NodePublishVolume asks for.
import { invalid } from '../common/errors.js'
import { MOUNT_ATTR, MS, ST, type MountAttr } from '../native/index.js'

export interface BindFlags {
  readonly: boolean
  nosuid: boolean
  nodev: boolean
  noexec: boolean
  noatime: boolean
  nodiratime: boolean
  strictatime: boolean
}


const OPTIONS: Record<string, (f: BindFlags) => void> = {
  ro: (f) => { f.readonly = true },
  rw: () => {},
  nosuid: (f) => { f.nosuid = true },
  suid: (f) => { f.nosuid = false },
  nodev: (f) => { f.nodev = true },
  dev: (f) => { f.nodev = false },
  noexec: (f) => { f.noexec = true },
  exec: (f) => { f.noexec = false },
  noatime: (f) => { f.noatime = true; f.strictatime = false },
  relatime: (f) => { f.noatime = false; f.strictatime = false },
  strictatime: (f) => { f.strictatime = true; f.noatime = false },
  nodiratime: (f) => { f.nodiratime = true },
  diratime: (f) => { f.nodiratime = false },
  // Accepted for compatibility with what users put in StorageClass mountOptions; a bind is
  // what the node does anyway.
  defaults: () => {},
  bind: () => {},
  rbind: () => {},
}

export const BIND_MOUNT_OPTIONS = Object.keys(OPTIONS)

/** readonly comes from the request (or a read-only access mode) and wins over `rw`. */
export function parseBindFlags(field: string, mountFlags: string[], readonly: boolean): BindFlags {
  const f: BindFlags = { readonly: false, nosuid: false, nodev: false, noexec: false, noatime: false, nodiratime: false, strictatime: false }
  mountFlags.forEach((raw, i) => {
    // StorageClass mountOptions sometimes arrive comma-joined in one entry.
    for (const opt of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const apply = Object.hasOwn(OPTIONS, opt) ? OPTIONS[opt] : undefined
      if (!apply) throw invalid(`${field}[${i}]`, `mount option ${JSON.stringify(opt)} cannot be applied to a bind mount; allowed: ${BIND_MOUNT_OPTIONS.join(', ')}`)
      apply(f)
    }
  })
  if (readonly) f.readonly = true
  return f
}

/** True when a bind must carry flags of its own (a plain bind only has its source's). */
export function asksForFlags(f: BindFlags): boolean {
  return f.readonly || f.nosuid || f.nodev || f.noexec || f.noatime || f.nodiratime || f.strictatime
}

/**
 * mount_setattr attributes for a new bind. mount_setattr changes only what it names, so the
 * flags the bind took from its source stay without being read first, and the source's atime
 * mode stays unless one is asked for. The remount of older kernels (remountBits) differs in two
 * atime corners that no comparison (flagsMismatch) looks at: a source's noatime wins there over
 * an asked strictatime, and a source's strictatime becomes relatime.
 */
export function mountAttr(f: BindFlags): MountAttr {
  let set = 0
  let clear = 0
  if (f.readonly) set |= MOUNT_ATTR.RDONLY
  if (f.nosuid) set |= MOUNT_ATTR.NOSUID
  if (f.nodev) set |= MOUNT_ATTR.NODEV
  if (f.noexec) set |= MOUNT_ATTR.NOEXEC
  // The atime field is one value, not bits: setting one means clearing the field too.
  if (f.noatime) set |= MOUNT_ATTR.NOATIME
  else if (f.strictatime) set |= MOUNT_ATTR.STRICTATIME
  if (f.noatime || f.strictatime) clear |= MOUNT_ATTR.ATIME
  if (f.nodiratime) set |= MOUNT_ATTR.NODIRATIME
  return { set, clear }
}

/**
 * MS_* bits for the remount. A new bind inherits its source mount's flags, and a remount sets the
 * flags wholesale, so the bits the mount already has (current, from statvfs) are kept.
 */
export function remountBits(f: BindFlags, currentSt: number): number {
  let bits = MS.BIND | MS.REMOUNT
  if (f.readonly || currentSt & ST.RDONLY) bits |= MS.RDONLY
  if (f.nosuid || currentSt & ST.NOSUID) bits |= MS.NOSUID
  if (f.nodev || currentSt & ST.NODEV) bits |= MS.NODEV
  if (f.noexec || currentSt & ST.NOEXEC) bits |= MS.NOEXEC
  if (f.noatime || currentSt & ST.NOATIME) bits |= MS.NOATIME
  else if (f.strictatime) bits |= MS.STRICTATIME
  else bits |= MS.RELATIME
  if (f.nodiratime || currentSt & ST.NODIRATIME) bits |= MS.NODIRATIME
  return bits
}

/** Why a live mount (its statvfs flags) does not give what was asked, or undefined if it does. */
export function flagsMismatch(f: BindFlags, st: number): string | undefined {
  if (f.readonly !== Boolean(st & ST.RDONLY)) return `it is mounted ${st & ST.RDONLY ? 'read-only' : 'read-write'}`
  const bits = { nosuid: ST.NOSUID, nodev: ST.NODEV, noexec: ST.NOEXEC, noatime: ST.NOATIME, nodiratime: ST.NODIRATIME }
  const missing = (['nosuid', 'nodev', 'noexec', 'noatime', 'nodiratime'] as const).filter((k) => f[k] && !(st & bits[k]))
  if (missing.length > 0) return `it is mounted without ${missing.join(', ')}`
  return undefined
}

// Options that are per-mount or superblock flags for a real filesystem mount; anything else is
// handed to the filesystem as its data string, and the kernel refuses what it does not know.
const FS_FLAG_OPTIONS: Record<string, number> = {
  ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME, relatime: MS.RELATIME, strictatime: MS.STRICTATIME, sync: MS.SYNCHRONOUS,
  dirsync: MS.DIRSYNC, lazytime: MS.LAZYTIME,
}
const FS_NOOP_OPTIONS = new Set(['rw', 'defaults', 'suid', 'dev', 'exec', 'atime', 'diratime', 'async'])

/** mount(2) flags and data for staging an image's filesystem. */
export function parseFsMountFlags(field: string, mountFlags: string[], readonly: boolean): { bits: number; data: string } {
  let bits = readonly ? MS.RDONLY : 0
  const data: string[] = []
  mountFlags.forEach((raw, i) => {
    for (const opt of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (Object.hasOwn(FS_FLAG_OPTIONS, opt)) bits |= FS_FLAG_OPTIONS[opt]!
      else if (FS_NOOP_OPTIONS.has(opt)) continue
      else if (/^[A-Za-z0-9_.=:/+-]+$/.test(opt)) data.push(opt)
      else throw invalid(`${field}[${i}]`, `mount option ${JSON.stringify(opt)} has characters a mount option cannot have`)
    }
  })
  return { bits, data: data.join(',') }
}
