// O_PATH file descriptors: a handle on a filesystem object that was resolved
// once, so later operations (statx, mount via /proc/self/fd/N) act on that
// object even if someone swaps a path component for a symlink in between.

import { constants as fsConstants, readlinkSync } from 'node:fs'
import { dirname } from 'node:path'
import { ErrnoError } from './errno.js'
import { checkPath, fns, noTrailingSlash, sys } from './libc.js'
import { fdType } from './stat.js'

// O_DIRECTORY/O_NOFOLLOW differ between architectures (arm64 swaps them with
// O_DIRECT/O_LARGEFILE), so take them from Node. O_PATH and O_CLOEXEC are not
// exposed by Node but have the generic values on every arch koffi supports
// on Linux (x86, x86-64, arm, arm64, riscv64, loongarch64, ppc64le).
const O_PATH = 0o10000000
const O_CLOEXEC = 0o2000000
const O_NOFOLLOW = fsConstants.O_NOFOLLOW
const O_DIRECTORY = fsConstants.O_DIRECTORY

const EBADF = 9
const ELOOP = 40

export interface OpenPathOptions {
  /** Fail with ENOTDIR unless the object is a directory. */
  directory?: boolean
}

/**
 * open(path, O_PATH|O_NOFOLLOW|O_CLOEXEC[|O_DIRECTORY]).
 *
 * A symlink in the last component is never followed. With `directory` the
 * kernel refuses it (ENOTDIR). Without it, O_PATH|O_NOFOLLOW would succeed and
 * hand back an fd for the link itself, i.e. for an object the workload
 * controls, so that case is detected, the fd closed, and ELOOP thrown: in
 * both modes "it was a symlink" is a hard error, never a silent success.
 * Symlinks in earlier components are still resolved, as for any open().
 * Trailing slashes are removed first, because the kernel would otherwise
 * follow a final symlink despite O_NOFOLLOW.
 */
export function openPath(path: string, opts?: OpenPathOptions): number {
  checkPath(path, 'open')
  path = noTrailingSlash(path)
  let flags = O_PATH | O_NOFOLLOW | O_CLOEXEC
  if (opts?.directory === true) flags |= O_DIRECTORY
  const fd = sys(fns.open, [path, flags], 'open', path)
  if (opts?.directory !== true) {
    let isLink: boolean
    try {
      isLink = fdType(fd) === 'symlink'
    } catch (e) {
      close(fd)
      throw e
    }
    if (isLink) {
      close(fd)
      throw new ErrnoError(ELOOP, 'open', path)
    }
  }
  return fd
}

/** openPath(path, { directory: true }). */
export function openDir(path: string): number {
  return openPath(path, { directory: true })
}

/**
 * close(2). Not retried on EINTR: Linux always releases the descriptor, and a
 * retry could close an fd another part of the process has just been given.
 */
export function close(fd: number): void {
  checkFd(fd, 'close')
  sys(fns.close, [fd], 'close')
}

/**
 * The magic-link path for an fd. Passing it to mount(2) (as target or bind
 * source) makes the kernel use the already-opened object instead of walking
 * the original path again, which closes the check-then-use window.
 */
export function fdPath(fd: number): string {
  checkFd(fd, 'fdPath')
  return `/proc/self/fd/${fd}`
}

/**
 * Waits until no rename is in flight in the directory that holds the object behind `fd`.
 *
 * rename(2) checks "is either end a mount point?" early and moves the entry later, all under
 * the parent directory's lock, but mount(2) does not take that lock: a directory can gain a
 * mount between a rename's check and its move, and the mount then travels with it. A rename
 * that starts after the mount sees the mount point and fails with EBUSY. So after mounting,
 * taking and dropping the parent's lock once is enough to know where the mount really ended
 * up. The lock is taken by renaming a name that does not exist onto itself: the kernel locks
 * the directory before it looks the name up, then answers ENOENT, having changed nothing.
 */
export function settleRenames(fd: number): void {
  checkFd(fd, 'settleRenames')
  // A directory knows its parent (".."); for anything else the kernel's name for the object is
  // the best there is. Either way the parent is only locked and unlocked, never changed.
  const parent = fdType(fd) === 'dir'
    ? sys(fns.openat, [fd, '..', O_PATH | O_DIRECTORY | O_CLOEXEC], 'openat', '..')
    : sys(fns.open, [dirname(readlinkSync(fdPath(fd))), O_PATH | O_DIRECTORY | O_CLOEXEC], 'open')
  try {
    // The answer (ENOENT, or 0 for a name someone made) does not matter, only the lock.
    fns.renameat(parent, BARRIER_NAME, parent, BARRIER_NAME)
  } finally {
    close(parent)
  }
}

// A name the driver never creates; if someone does, the no-op rename of it onto itself still
// takes the lock and changes nothing.
const BARRIER_NAME = '.tscsi-rename-barrier'

/** Opens `path` with openPath, runs `fn`, and always closes the fd. */
export function withPath<T>(path: string, opts: OpenPathOptions | undefined, fn: (fd: number) => T): T {
  const fd = openPath(path, opts)
  try {
    return fn(fd)
  } finally {
    // A failing close must not mask fn's own error (or its result); with
    // O_PATH fds close cannot fail for any reason other than a bad fd.
    try {
      close(fd)
    } catch {
      /* ignore */
    }
  }
}

function checkFd(fd: number, syscall: string): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new ErrnoError(EBADF, syscall)
}
