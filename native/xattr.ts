// Per-inode metadata that Node's fs cannot read or write faithfully, for the
// copy engine (node/copy.ts): extended attributes, nanosecond timestamps and
// special files.
//
// - xattrs: Node has no API at all.
// - fs.utimes/lutimes take seconds as a double, which at today's epoch keeps
//   only ~0.25 µs of precision, so a copied mtime would differ from the source
//   in its last nanosecond digits; utimensat(2) takes a timespec.
// - fifos and device nodes: Node has no mknod(2).
//
// Every call here is the no-follow variant: a symlink in the last component
// is acted on itself (or refused), never followed. Paths may be Buffers, so
// file names that are not valid UTF-8 survive a copy byte for byte.

import { ErrnoError } from './errno.js'
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, checkPath, declare, sys } from './libc.js'

/** A path as Node's fs accepts it: a string, or the raw bytes of a name. */
export type RawPath = string | Buffer

const EINVAL = 22
const ENODATA = 61
const ERANGE = 34
const EOPNOTSUPP = 95

// ssize_t/size_t are spelled intptr_t/uintptr_t: koffi has no ssize_t, and
// these have the same width and signedness on every Linux ABI.
const fns = {
  llistxattr: declare<[path: RawPath, list: Buffer | null, size: number]>(
    'intptr_t llistxattr(const char *path, void *list, uintptr_t size)',
  ),
  lgetxattr: declare<[path: RawPath, name: string, value: Buffer | null, size: number]>(
    'intptr_t lgetxattr(const char *path, const char *name, void *value, uintptr_t size)',
  ),
  lsetxattr: declare<[path: RawPath, name: string, value: Buffer, size: number, flags: number]>(
    'int lsetxattr(const char *path, const char *name, const void *value, uintptr_t size, int flags)',
  ),
  lremovexattr: declare<[path: RawPath, name: string]>('int lremovexattr(const char *path, const char *name)'),
  utimensat: declare<[dirfd: number, path: RawPath, times: Buffer, flags: number]>(
    'int utimensat(int dirfd, const char *path, const void *times, int flags)',
  ),
  // mknod is a real symbol since glibc 2.33 (before, only __xmknod existed).
  mknod: declare<[path: RawPath, mode: number, dev: bigint]>('int mknod(const char *path, unsigned int mode, uint64_t dev)'),
}

/**
 * A string goes to koffi as is (it NUL-terminates a copy). A Buffer is passed
 * as a raw pointer, so it gets its terminator here; an embedded NUL would
 * silently shorten the path and is refused like checkPath does for strings.
 */
function cpath(p: RawPath, syscall: string): RawPath {
  if (typeof p === 'string') {
    checkPath(p, syscall)
    return p
  }
  if (p.includes(0)) throw new ErrnoError(EINVAL, syscall, label(p))
  return Buffer.concat([p, Buffer.alloc(1)])
}

const label = (p: RawPath): string => (typeof p === 'string' ? p : p.toString())

/** True for "this filesystem (or namespace) has no xattrs". ENOTSUP == EOPNOTSUPP on Linux. */
export function isXattrUnsupported(e: unknown): e is ErrnoError {
  return e instanceof ErrnoError && e.errno === EOPNOTSUPP
}

/** True for "no such attribute" (ENODATA, which Linux also spells ENOATTR). */
export function isNoXattr(e: unknown): e is ErrnoError {
  return e instanceof ErrnoError && e.errno === ENODATA
}

// Size-then-read can race with a concurrent setxattr that grows the value:
// the read then fails with ERANGE and we ask for the size again. A bounded
// number of rounds keeps a writer that never stops from spinning us forever.
const SIZE_RACE_ROUNDS = 8

function readSized(syscall: string, p: RawPath, call: (buf: Buffer | null, size: number) => number): Buffer {
  for (let round = 1; ; round++) {
    const size = sys(call, [null, 0], syscall, label(p))
    if (size === 0) return Buffer.alloc(0)
    const buf = Buffer.alloc(size)
    try {
      const n = sys(call, [buf, size], syscall, label(p))
      return buf.subarray(0, n)
    } catch (e) {
      if (e instanceof ErrnoError && e.errno === ERANGE && round < SIZE_RACE_ROUNDS) continue
      throw e
    }
  }
}

/**
 * llistxattr(2): the names of `path`'s extended attributes, in the kernel's
 * order. Only names this process may see are listed (trusted.* needs
 * CAP_SYS_ADMIN). A filesystem without xattr support yields [] rather than an
 * error: it has no attributes to copy. Names are decoded as UTF-8.
 */
export function listXattrs(path: RawPath): string[] {
  const p = cpath(path, 'llistxattr')
  let raw: Buffer
  try {
    raw = readSized('llistxattr', path, (buf, size) => fns.llistxattr(p, buf, size))
  } catch (e) {
    if (isXattrUnsupported(e)) return []
    throw e
  }
  const names: string[] = []
  let start = 0
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0) continue
    if (i > start) names.push(raw.toString('utf8', start, i))
    start = i + 1
  }
  return names
}

/**
 * lgetxattr(2): the value of one attribute. Throws ErrnoError ENODATA if it
 * does not exist (see isNoXattr) and EOPNOTSUPP if the filesystem or the
 * namespace does not support xattrs: asking for a specific attribute and not
 * getting it is the caller's decision to make, unlike an empty listing.
 */
export function getXattr(path: RawPath, name: string): Buffer {
  const p = cpath(path, 'lgetxattr')
  checkPath(name, 'lgetxattr')
  return readSized('lgetxattr', path, (buf, size) => fns.lgetxattr(p, name, buf, size))
}

/**
 * lsetxattr(2) with flags 0: creates or replaces. Setting trusted.* needs
 * CAP_SYS_ADMIN; user.* is refused (EPERM) on symlinks and special files by
 * the kernel; security.capability is cleared again by a later chown/write.
 */
export function setXattr(path: RawPath, name: string, value: Buffer): void {
  const p = cpath(path, 'lsetxattr')
  checkPath(name, 'lsetxattr')
  sys(fns.lsetxattr, [p, name, value, value.length, 0], 'lsetxattr', label(path))
}

/** lremovexattr(2). Removing an attribute that is not there is not an error. */
export function removeXattr(path: RawPath, name: string): void {
  const p = cpath(path, 'lremovexattr')
  checkPath(name, 'lremovexattr')
  try {
    sys(fns.lremovexattr, [p, name], 'lremovexattr', label(path))
  } catch (e) {
    if (!isNoXattr(e)) throw e
  }
}

/** Pure: struct timespec[2] { atime, mtime } from nanoseconds since the epoch. */
export function encodeTimespecs(atimeNs: bigint, mtimeNs: bigint): Buffer {
  const b = Buffer.alloc(32)
  for (const [i, ns] of [atimeNs, mtimeNs].entries()) {
    // Floor division, so times before 1970 get a negative tv_sec and a
    // tv_nsec in [0, 1e9), as the kernel requires.
    let sec = ns / 1_000_000_000n
    let nsec = ns % 1_000_000_000n
    if (nsec < 0n) {
      sec -= 1n
      nsec += 1_000_000_000n
    }
    b.writeBigInt64LE(sec, i * 16)
    b.writeBigInt64LE(nsec, i * 16 + 8)
  }
  return b
}

/**
 * utimensat(AT_FDCWD, path, {atime, mtime}, AT_SYMLINK_NOFOLLOW): sets both
 * times with nanosecond precision (as far as the filesystem keeps them) on
 * `path` itself, a symlink included. ctime cannot be set by anyone.
 */
export function setTimesNs(path: RawPath, atimeNs: bigint, mtimeNs: bigint): void {
  const p = cpath(path, 'utimensat')
  sys(fns.utimensat, [AT_FDCWD, p, encodeTimespecs(atimeNs, mtimeNs), AT_SYMLINK_NOFOLLOW], 'utimensat', label(path))
}

const S_IFMT = 0o170000
const MKNOD_TYPES = new Set([0o010000 /* fifo */, 0o020000 /* chr */, 0o060000 /* blk */])

/**
 * mknod(2) for a fifo, character or block device. `mode` carries the type
 * bits (S_IFIFO/S_IFCHR/S_IFBLK) and permissions (the umask applies); `rdev`
 * is the encoded device number as Node's bigint stat reports it (glibc's
 * makedev encoding, which is what dev_t means to mknod). Devices need
 * CAP_MKNOD; anything else (regular files, sockets) is refused with EINVAL
 * because Node has better ways to create those.
 */
export function mknod(path: RawPath, mode: number, rdev: bigint = 0n): void {
  if (!MKNOD_TYPES.has(mode & S_IFMT)) throw new ErrnoError(EINVAL, 'mknod', label(path))
  const p = cpath(path, 'mknod')
  sys(fns.mknod, [p, mode, rdev], 'mknod', label(path))
}

/**
 * Makes `dst`'s xattrs equal to `src`'s (neither followed if a symlink):
 * every attribute of src is set on dst, and attributes dst has but src lacks
 * are removed, e.g. an ACL that dst inherited on creation from its parent's
 * default ACL. security.* names are left alone when src lacks them: an LSM
 * may label every inode (security.selinux) and refuse removal. An attribute
 * that disappears from src between list and read is skipped.
 */
export function copyXattrs(src: RawPath, dst: RawPath): void {
  const names = listXattrs(src)
  for (const name of listXattrs(dst)) {
    if (!names.includes(name) && !name.startsWith('security.')) removeXattr(dst, name)
  }
  for (const name of names) {
    let value: Buffer
    try {
      value = getXattr(src, name)
    } catch (e) {
      if (isNoXattr(e)) continue
      throw e
    }
    setXattr(dst, name, value)
  }
}
