// statx(2) and statvfs(3).
//
// statx is the node plugin's hot-path "is this a mount point?" check: one
// syscall, answered from the dentry, no /proc/self/mountinfo parsing.

import { readlinkSync, realpathSync } from 'node:fs'
import type { TypeObject } from 'koffi'
import { dirname } from 'node:path'
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_NO_AUTOMOUNT,
  AT_STATX_DONT_SYNC,
  AT_SYMLINK_NOFOLLOW,
  checkPath,
  fns,
  koffi,
  noTrailingSlash,
  sys,
} from './libc.js'
import { ErrnoError } from './errno.js'

export interface Statx {
  mode: number
  type: 'file' | 'dir' | 'symlink' | 'block' | 'char' | 'fifo' | 'socket' | 'unknown'
  ino: bigint
  size: bigint
  blocks: bigint
  uid: number
  gid: number
  nlink: number
  /** "major:minor", the same notation as field 3 of /proc/self/mountinfo. */
  dev: string
  rdevMajor: number
  rdevMinor: number
  /** Same id space as MountInfo.mountId; 0n if the kernel could not say. */
  mntId: bigint
  isMountRoot: boolean
}

export interface StatVfs {
  blockSize: number
  fragmentSize: number
  blocks: bigint
  bfree: bigint
  bavail: bigint
  files: bigint
  ffree: bigint
  favail: bigint
  fsid: bigint
  /** ST_* bits. */
  flags: number
  nameMax: number
}

/** statvfs f_flag bits, from <sys/statvfs.h>. */
export const ST = Object.freeze({
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  MANDLOCK: 64,
  NOATIME: 1024,
  NODIRATIME: 2048,
  RELATIME: 4096,
  NOSYMFOLLOW: 8192,
} as const)

const STATX_TYPE = 0x1
const STATX_BASIC_STATS = 0x7ff
const STATX_MNT_ID = 0x1000
const STATX_ATTR_MOUNT_ROOT = 0x2000

// Struct layouts are declared with koffi so that koffi's ABI rules (not hand
// arithmetic) produce the offsets, and the total size is checked against the
// C headers; decoding then reads those offsets from a Buffer. Built lazily,
// like everything else that touches koffi.
type Offsets<K extends string> = { readonly [P in K]: number }

function layoutOf<K extends string>(type: TypeObject, keys: readonly K[], expectSize: number, what: string): Offsets<K> {
  if (type.size !== expectSize) throw new Error(`native: ${what} is ${type.size} bytes, expected ${expectSize}`)
  const off = {} as Record<K, number>
  for (const k of keys) {
    const m = type.members?.[k]
    if (m === undefined) throw new Error(`native: ${what} has no member ${k}`)
    off[k] = m.offset
  }
  return off
}

const STATX_FIELDS = [
  'stx_mask', 'stx_attributes', 'stx_nlink', 'stx_uid', 'stx_gid', 'stx_mode', 'stx_ino', 'stx_size',
  'stx_blocks', 'stx_attributes_mask', 'stx_rdev_major', 'stx_rdev_minor', 'stx_dev_major', 'stx_dev_minor',
  'stx_mnt_id',
] as const
const STATX_SIZE = 256
let statxOff: Offsets<(typeof STATX_FIELDS)[number]> | undefined

function getStatxOffsets(): Offsets<(typeof STATX_FIELDS)[number]> {
  if (statxOff) return statxOff
  const k = koffi()
  // <linux/stat.h>. Anonymous structs, so a second evaluation of this module
  // (test runners, hot reload) cannot collide with koffi's global type names.
  const ts = k.struct({ tv_sec: 'int64_t', tv_nsec: 'uint32_t', __reserved: 'int32_t' })
  const t = k.struct({
    stx_mask: 'uint32_t',
    stx_blksize: 'uint32_t',
    stx_attributes: 'uint64_t',
    stx_nlink: 'uint32_t',
    stx_uid: 'uint32_t',
    stx_gid: 'uint32_t',
    stx_mode: 'uint16_t',
    __spare0: 'uint16_t',
    stx_ino: 'uint64_t',
    stx_size: 'uint64_t',
    stx_blocks: 'uint64_t',
    stx_attributes_mask: 'uint64_t',
    stx_atime: ts,
    stx_btime: ts,
    stx_ctime: ts,
    stx_mtime: ts,
    stx_rdev_major: 'uint32_t',
    stx_rdev_minor: 'uint32_t',
    stx_dev_major: 'uint32_t',
    stx_dev_minor: 'uint32_t',
    stx_mnt_id: 'uint64_t',
    stx_dio_mem_align: 'uint32_t',
    stx_dio_offset_align: 'uint32_t',
    // The kernel always copies exactly 256 bytes and carves new fields out of
    // this tail, so the buffer size is part of the ABI, not a guess.
    __spare3: k.array('uint64_t', 12),
  })
  statxOff = layoutOf(t, STATX_FIELDS, STATX_SIZE, 'struct statx')
  return statxOff
}

const STATVFS_FIELDS = [
  'f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files', 'f_ffree', 'f_favail', 'f_fsid',
  'f_flag', 'f_namemax',
] as const
const STATVFS_SIZE = 112
let statvfsOff: Offsets<(typeof STATVFS_FIELDS)[number]> | undefined

function getStatvfsOffsets(): Offsets<(typeof STATVFS_FIELDS)[number]> {
  if (statvfsOff) return statvfsOff
  const k = koffi()
  // glibc <bits/statvfs.h> on LP64: every field is 64 bits wide (unsigned
  // long or fsblkcnt_t/fsfilcnt_t) and there is no __f_unused member.
  const t = k.struct({
    f_bsize: 'unsigned long',
    f_frsize: 'unsigned long',
    f_blocks: 'uint64_t',
    f_bfree: 'uint64_t',
    f_bavail: 'uint64_t',
    f_files: 'uint64_t',
    f_ffree: 'uint64_t',
    f_favail: 'uint64_t',
    f_fsid: 'unsigned long',
    f_flag: 'unsigned long',
    f_namemax: 'unsigned long',
    __f_spare: k.array('int', 6),
  })
  statvfsOff = layoutOf(t, STATVFS_FIELDS, STATVFS_SIZE, 'struct statvfs')
  return statvfsOff
}

// One scratch buffer per struct: calls are synchronous and decoded before the
// next call can run, so sharing is safe and saves an allocation per call.
// All Linux targets koffi ships prebuilt binaries for are little-endian.
const statxBuf = Buffer.alloc(STATX_SIZE)
const statvfsBuf = Buffer.alloc(STATVFS_SIZE)

const u32 = (b: Buffer, o: number): number => b.readUInt32LE(o)
const u64 = (b: Buffer, o: number): bigint => b.readBigUInt64LE(o)

function typeOf(mode: number): Statx['type'] {
  switch (mode & 0o170000) {
    case 0o100000: return 'file'
    case 0o040000: return 'dir'
    case 0o120000: return 'symlink'
    case 0o060000: return 'block'
    case 0o020000: return 'char'
    case 0o010000: return 'fifo'
    case 0o140000: return 'socket'
    default: return 'unknown'
  }
}

/**
 * Calls statx and decodes. `mountRootKnown` is false when the kernel does not
 * support STATX_ATTR_MOUNT_ROOT, in which case isMountRoot is not yet valid.
 */
function rawStatx(dirfd: number, path: string, flags: number, label: string): { st: Statx; mountRootKnown: boolean } {
  const o = getStatxOffsets()
  const b = statxBuf
  sys(fns.statx, [dirfd, path, flags, STATX_BASIC_STATS | STATX_MNT_ID, b], 'statx', label)
  const mask = u32(b, o.stx_mask)
  const mode = b.readUInt16LE(o.stx_mode)
  // STATX_ATTR_MOUNT_ROOT lives in the low 32 bits of both 64-bit fields.
  const attrs = u32(b, o.stx_attributes)
  const attrsMask = u32(b, o.stx_attributes_mask)
  const mountRootKnown = (attrsMask & STATX_ATTR_MOUNT_ROOT) !== 0
  const st: Statx = {
    mode,
    type: typeOf(mode),
    ino: u64(b, o.stx_ino),
    size: u64(b, o.stx_size),
    blocks: u64(b, o.stx_blocks),
    uid: u32(b, o.stx_uid),
    gid: u32(b, o.stx_gid),
    nlink: u32(b, o.stx_nlink),
    dev: `${u32(b, o.stx_dev_major)}:${u32(b, o.stx_dev_minor)}`,
    rdevMajor: u32(b, o.stx_rdev_major),
    rdevMinor: u32(b, o.stx_rdev_minor),
    mntId: (mask & STATX_MNT_ID) !== 0 ? u64(b, o.stx_mnt_id) : 0n,
    isMountRoot: mountRootKnown && (attrs & STATX_ATTR_MOUNT_ROOT) !== 0,
  }
  return { st, mountRootKnown }
}

export interface StatxOptions {
  /** Follow a symlink in the last component (default false). */
  follow?: boolean
}

/**
 * statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW? | AT_NO_AUTOMOUNT, ...).
 * AT_NO_AUTOMOUNT keeps a stat of an autofs trigger from mounting something.
 */
export function statx(path: string, opts?: StatxOptions): Statx {
  checkPath(path, 'statx')
  const follow = opts?.follow === true
  // Otherwise "link/" would be followed despite AT_SYMLINK_NOFOLLOW.
  if (!follow) path = noTrailingSlash(path)
  // By path: the driver's "what is mounted here?" question (the cached attributes answer it). An
  // open fd (fstatx) is asked with the default sync, as the copy engine needs current sizes.
  const flags = AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC | (follow ? 0 : AT_SYMLINK_NOFOLLOW)
  const { st, mountRootKnown } = rawStatx(AT_FDCWD, path, flags, path)
  if (!mountRootKnown) completeFromParent(st, follow ? realpathSync(path) : path)
  return st
}

/** statx on an open fd (AT_EMPTY_PATH), e.g. one from openPath(). */
export function fstatx(fd: number): Statx {
  if (!Number.isInteger(fd) || fd < 0) throw new ErrnoError(9 /* EBADF */, 'statx')
  const { st, mountRootKnown } = rawStatx(fd, '', AT_EMPTY_PATH | AT_NO_AUTOMOUNT, `/proc/self/fd/${fd}`)
  if (!mountRootKnown) completeFromParent(st, readlinkSync(`/proc/self/fd/${fd}`))
  return st
}

/**
 * Internal (for fd.ts): just the file type of an fd, asking the kernel for
 * STATX_TYPE only and skipping the full decode.
 */
export function fdType(fd: number): Statx['type'] {
  const o = getStatxOffsets()
  sys(fns.statx, [fd, '', AT_EMPTY_PATH, STATX_TYPE, statxBuf], 'statx', `/proc/self/fd/${fd}`)
  return typeOf(statxBuf.readUInt16LE(o.stx_mode))
}

/**
 * Fallback for kernels without STATX_ATTR_MOUNT_ROOT (before 5.8): fills in
 * mntId if missing and decides isMountRoot by comparing with the parent.
 * Exported for tests only; not part of the public API (see index.ts).
 */
export function completeFromParent(st: Statx, path: string): void {
  if (st.mntId === 0n) st.mntId = mountIdViaHandle(path)
  st.isMountRoot = isMountRootByParent(st, path)
}

/** Mount-root check by parent comparison; see completeFromParent. */
export function isMountRootByParent(st: Statx, path: string): boolean {
  // For a directory, "dir/.." is resolved by the kernel, which steps out of a
  // mount root into the mountpoint's parent: exactly the parent we want even
  // when `path` came in through symlinks. A non-directory (a file bind mount)
  // has no "..", but the object named by `path` is an entry of dirname(path).
  const parentPath = st.type === 'dir' ? (path.endsWith('/') ? `${path}..` : `${path}/..`) : dirname(path)
  const { st: parent } = rawStatx(AT_FDCWD, parentPath, AT_NO_AUTOMOUNT, parentPath)
  if (parent.mntId === 0n) parent.mntId = mountIdViaHandle(parentPath)
  if (parent.dev !== st.dev) return true
  if (st.mntId !== 0n && parent.mntId !== 0n && parent.mntId !== st.mntId) return true
  // "/.." is "/" itself: the root of the namespace is always a mount root.
  return st.type === 'dir' && parent.ino === st.ino
}

// struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[]; }
// We only want mount_id, which the kernel reports even when it then fails
// with EOVERFLOW because handle_bytes (0) is too small for the handle.
const handleBuf = Buffer.alloc(8 + 128)
const mountIdOut = new Int32Array(1)

function mountIdViaHandle(path: string): bigint {
  handleBuf.writeUInt32LE(0, 0)
  mountIdOut[0] = -1
  try {
    sys(fns.nameToHandleAt, [AT_FDCWD, path, handleBuf, mountIdOut, 0], 'name_to_handle_at', path)
  } catch (e) {
    // EOVERFLOW is the expected outcome; EOPNOTSUPP (fs without export
    // support) leaves mount_id unset and we report "unknown".
    if (!(e instanceof ErrnoError) || e.code !== 'EOVERFLOW') return 0n
  }
  return mountIdOut[0]! >= 0 ? BigInt(mountIdOut[0]!) : 0n
}

/** statvfs(3). glibc derives f_flag from statfs' f_flags, without reading /proc. */
export function statvfs(path: string): StatVfs {
  checkPath(path, 'statvfs')
  const o = getStatvfsOffsets()
  const b = statvfsBuf
  sys(fns.statvfs, [path, b], 'statvfs', path)
  return {
    blockSize: Number(u64(b, o.f_bsize)),
    fragmentSize: Number(u64(b, o.f_frsize)),
    blocks: u64(b, o.f_blocks),
    bfree: u64(b, o.f_bfree),
    bavail: u64(b, o.f_bavail),
    files: u64(b, o.f_files),
    ffree: u64(b, o.f_ffree),
    favail: u64(b, o.f_favail),
    fsid: u64(b, o.f_fsid),
    flags: Number(u64(b, o.f_flag)),
    nameMax: Number(u64(b, o.f_namemax)),
  }
}
