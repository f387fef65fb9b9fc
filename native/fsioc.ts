// Filesystem ioctls for snapshots and clones: reflinks (FICLONE,
// FICLONERANGE) and freezing (FIFREEZE, FITHAW).
//
// A reflink shares extents copy-on-write: instant, and no extra space until
// either side is written. Only some filesystems can (xfs with reflink=1,
// btrfs, bcachefs, ocfs2; not ext4, not tmpfs), and never across
// filesystems. The errors that mean "this filesystem/pair cannot reflink, copy
// instead" are EOPNOTSUPP (ENOTSUP), EXDEV and EINVAL; see isReflinkUnsupported.

import { fchmodSync, unlinkSync } from 'node:fs'
import { ErrnoError, fromNodeError } from './errno.js'
import {
  O_CLOEXEC,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_RDONLY,
  O_WRONLY,
  checkFd,
  checkLayout,
  closeQuietly,
  createFd,
  ioc,
  ioctl,
  ioctlAsync,
  koffi,
  openFd,
} from './ioctl.js'
import { fstatx } from './stat.js'

/** _IOW(0x94, 9, int) */
const FICLONE = ioc('w', 0x94, 9, 4)
/** _IOW(0x94, 13, struct file_clone_range) */
const FICLONERANGE = ioc('w', 0x94, 13, 32)
/** _IOWR('X', 119, int) */
const FIFREEZE = ioc('rw', 0x58, 119, 4)
/** _IOWR('X', 120, int) */
const FITHAW = ioc('rw', 0x58, 120, 4)

// struct file_clone_range { __s64 src_fd; __u64 src_offset, src_length, dest_offset; }
const FCR = { src_fd: 0, src_offset: 8, src_length: 16, dest_offset: 24 } as const
const FCR_SIZE = 32

let layoutChecked = false
function checkLayouts(): void {
  if (layoutChecked) return
  const t = koffi().struct({ src_fd: 'int64_t', src_offset: 'uint64_t', src_length: 'uint64_t', dest_offset: 'uint64_t' })
  checkLayout('struct file_clone_range', t, FCR_SIZE, FCR)
  layoutChecked = true
}

const EINVAL = 22
const EXDEV = 18
const EOPNOTSUPP = 95

/**
 * True for the errors with which FICLONE/FICLONERANGE say "not possible here"
 * (as opposed to I/O errors, ENOSPC, EPERM...): fall back to copying.
 * EINVAL also covers unaligned ranges in reflinkRange, and a source and
 * destination that are the same file.
 */
export function isReflinkUnsupported(e: unknown): e is ErrnoError {
  return e instanceof ErrnoError && (e.errno === EOPNOTSUPP || e.errno === EXDEV || e.errno === EINVAL)
}

/** Pure: struct file_clone_range for FICLONERANGE. */
export function encodeFileCloneRange(srcFd: number, srcOffset: bigint, length: bigint, dstOffset: bigint): Buffer {
  const b = Buffer.alloc(FCR_SIZE)
  b.writeBigInt64LE(BigInt(srcFd), FCR.src_fd)
  b.writeBigUInt64LE(srcOffset, FCR.src_offset)
  b.writeBigUInt64LE(length, FCR.src_length)
  b.writeBigUInt64LE(dstOffset, FCR.dest_offset)
  return b
}

/**
 * Creates `dst` as a reflink copy of the regular file `src` (FICLONE).
 *
 * `dst` must not exist (O_EXCL; EEXIST otherwise) and gets src's permission
 * bits; ownership, timestamps and xattrs are the caller's business. Neither
 * path may be a symlink in its last component (ELOOP). On any failure the
 * `dst` we created is removed again, so a caller can fall back to copying
 * into the same name: see isReflinkUnsupported.
 */
export function reflinkFile(src: string, dst: string): void {
  const srcFd = openFd(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
  try {
    const st = fstatx(srcFd)
    // FICLONE on a directory or device gives EISDIR/EINVAL; say what is wrong.
    if (st.type !== 'file') throw new ErrnoError(st.type === 'dir' ? 21 /* EISDIR */ : EINVAL, 'ioctl FICLONE', src)
    const dstFd = createFd(dst, O_WRONLY | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    try {
      ioctl(dstFd, FICLONE, 'FICLONE', srcFd, dst)
      try {
        fchmodSync(dstFd, st.mode & 0o7777)
      } catch (e) {
        throw fromNodeError(e, 'fchmod', dst)
      }
    } catch (e) {
      closeQuietly(dstFd)
      try {
        unlinkSync(dst)
      } catch {
        /* best effort: the error that matters is e */
      }
      throw e
    }
    closeQuietly(dstFd)
  } finally {
    closeQuietly(srcFd)
  }
}

/**
 * FICLONERANGE: shares `length` bytes of srcFd at `srcOffset` into dstFd at
 * `dstOffset` (length 0: to the end of the source). Offsets and length must
 * be multiples of the filesystem block size, except a length that reaches the
 * source's EOF; otherwise EINVAL. dstFd must be open for writing. The fds are
 * the caller's (e.g. from fs.openSync) and are not closed.
 */
export function reflinkRange(
  srcFd: number,
  dstFd: number,
  srcOffset: number | bigint,
  length: number | bigint,
  dstOffset: number | bigint,
): void {
  ioctl(dstFd, FICLONERANGE, 'FICLONERANGE', cloneRangeArg(srcFd, dstFd, srcOffset, length, dstOffset), `/proc/self/fd/${dstFd}`)
}

/**
 * reflinkRange on a worker thread: sharing a range of a large, fragmented image walks and
 * rewrites extent maps on both files, which can take a while (and waits for the filesystem's
 * journal); the copy engine must not hold the event loop meanwhile.
 */
export async function reflinkRangeAsync(
  srcFd: number,
  dstFd: number,
  srcOffset: number | bigint,
  length: number | bigint,
  dstOffset: number | bigint,
): Promise<void> {
  await ioctlAsync(dstFd, FICLONERANGE, 'FICLONERANGE', cloneRangeArg(srcFd, dstFd, srcOffset, length, dstOffset), `/proc/self/fd/${dstFd}`)
}

function cloneRangeArg(srcFd: number, dstFd: number, srcOffset: number | bigint, length: number | bigint, dstOffset: number | bigint): Buffer {
  checkFd(srcFd, 'ioctl FICLONERANGE')
  checkFd(dstFd, 'ioctl FICLONERANGE')
  checkLayouts()
  return encodeFileCloneRange(srcFd, u64(srcOffset, 'srcOffset'), u64(length, 'length'), u64(dstOffset, 'dstOffset'))
}

function u64(v: number | bigint, what: string): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n
  if (b < 0n || b > 0xffffffffffffffffn) throw new RangeError(`reflinkRange: invalid ${what} ${String(v)}`)
  return b
}

/**
 * Opens the root of the mount at `mountPoint` (no symlink as the last
 * component). Anything that is not a mount root is refused with EINVAL:
 * freezing acts on the whole filesystem an fd belongs to, and a path whose
 * mount went away would otherwise freeze its parent's (often the root fs).
 */
function openMountRoot(mountPoint: string, syscall: string): number {
  const fd = openFd(mountPoint, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
  try {
    if (!fstatx(fd).isMountRoot) throw new ErrnoError(EINVAL, syscall, mountPoint)
  } catch (e) {
    closeQuietly(fd)
    throw e
  }
  return fd
}

/**
 * FIFREEZE: flushes and freezes the filesystem mounted at `mountPoint`; every
 * write to it (by anyone, this process included) blocks until thaw. EBUSY if
 * it is already frozen. A frozen filesystem stays frozen if this process dies,
 * so prefer withFrozen(), which always thaws. The flush can take seconds on a
 * busy filesystem, all of it on the event loop: a server uses freezeAsync.
 */
export function freeze(mountPoint: string): void {
  const fd = openMountRoot(mountPoint, 'ioctl FIFREEZE')
  try {
    ioctl(fd, FIFREEZE, 'FIFREEZE', 0, mountPoint)
  } finally {
    closeQuietly(fd)
  }
}

/** freeze() with the flush and the freeze on a worker thread. */
export async function freezeAsync(mountPoint: string): Promise<void> {
  closeQuietly(await freezeFdAsync(mountPoint))
}

/** FITHAW. EINVAL if the filesystem is not frozen. */
export function thaw(mountPoint: string): void {
  const fd = openMountRoot(mountPoint, 'ioctl FITHAW')
  try {
    ioctl(fd, FITHAW, 'FITHAW', 0, mountPoint)
  } finally {
    closeQuietly(fd)
  }
}

/**
 * Freezes the filesystem at `mountPoint`, runs `fn`, and thaws it whatever
 * `fn` does. One fd is held across both, so the thaw reaches the same
 * filesystem even if the mount is moved meanwhile. `fn` must not write to
 * the frozen filesystem (it would block forever, holding the thaw back); for
 * an image volume that is fine, since the backing file lives on another one.
 * If thawing fails (other than "someone else already thawed it"), that error
 * is thrown, even over fn's: a filesystem left frozen must not go unnoticed.
 */
export function withFrozen<T>(mountPoint: string, fn: () => T): T {
  const fd = freezeFd(mountPoint)
  let result: T
  try {
    result = fn()
  } catch (e) {
    thawFd(fd, mountPoint)
    throw e
  }
  thawFd(fd, mountPoint)
  return result
}

/** withFrozen for an async `fn`; the freeze runs off the event loop, the thaw waits for fn. */
export async function withFrozenAsync<T>(mountPoint: string, fn: () => Promise<T>): Promise<T> {
  const fd = await freezeFdAsync(mountPoint)
  let result: T
  try {
    result = await fn()
  } catch (e) {
    thawFd(fd, mountPoint)
    throw e
  }
  thawFd(fd, mountPoint)
  return result
}

function freezeFd(mountPoint: string): number {
  const fd = openMountRoot(mountPoint, 'ioctl FIFREEZE')
  try {
    ioctl(fd, FIFREEZE, 'FIFREEZE', 0, mountPoint)
  } catch (e) {
    closeQuietly(fd)
    throw e
  }
  return fd
}

async function freezeFdAsync(mountPoint: string): Promise<number> {
  const fd = openMountRoot(mountPoint, 'ioctl FIFREEZE')
  try {
    await ioctlAsync(fd, FIFREEZE, 'FIFREEZE', 0, mountPoint)
  } catch (e) {
    closeQuietly(fd)
    throw e
  }
  return fd
}

function thawFd(fd: number, mountPoint: string): void {
  try {
    ioctl(fd, FITHAW, 'FITHAW', 0, mountPoint)
  } catch (e) {
    if (!(e instanceof ErrnoError && e.errno === EINVAL)) throw e
  } finally {
    closeQuietly(fd)
  }
}

/** For tests: verifies the hard-coded struct layouts against koffi (needs koffi, not root). */
export { checkLayouts as checkFsiocLayouts }
