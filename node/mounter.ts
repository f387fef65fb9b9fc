// The seam between the node service and the kernel. The service asks questions (what is at this
// path, is it a mount root, which object does it show) and requests effects (bind, remount,
// unmount) through this interface; the real implementation calls libc through native/, and
// service tests swap in a fake. All methods are synchronous: each is one or two syscalls of a
// few microseconds, cheaper than a trip through the thread pool.
import { mkdirSync, rmdirSync } from 'node:fs'
import { aborted } from '../common/errors.js'
import {
  close, fdPath, fromNodeError, fstatx, MNT, MS, mount, openDir, statvfs, statx, umount2, isErrno,
  type StatVfs, type Statx,
} from '../native/index.js'
import { type BindFlags, needsRemount, remountBits } from './mountflags.js'

export interface PathInfo {
  type: Statx['type']
  dev: string
  ino: bigint
  isMountRoot: boolean
}

export interface Mounter {
  /** What is at path, without following a final symlink; undefined when nothing is. */
  inspect(path: string): PathInfo | undefined
  /**
   * Bind-mounts directory source onto directory target, then applies flags. Both ends are
   * opened O_PATH|O_NOFOLLOW and checked against `expect` first, and the mount is made between
   * the opened objects (/proc/self/fd/N), so a symlink swapped in after the caller's checks
   * cannot redirect the mount. A failed remount undoes the bind.
   */
  bind(source: string, target: string, flags: BindFlags, expect: { target: PathInfo }): void
  /** Unmounts target without following a symlink there. */
  unmount(target: string): void
  statfs(path: string): StatVfs
  /** mkdir for a target the driver creates (mode 0750); parent must exist. */
  mkdir(path: string): void
  /** Removes an empty directory; never follows a symlink, never removes content. */
  rmdir(path: string): void
}

export function toPathInfo(s: Statx): PathInfo {
  return { type: s.type, dev: s.dev, ino: s.ino, isMountRoot: s.isMountRoot }
}

/** A bind mount's root shows the same inode on the same device as the directory it binds. */
export function sameObject(a: PathInfo, b: PathInfo): boolean {
  return a.dev === b.dev && a.ino === b.ino
}

export const nativeMounter: Mounter = {
  inspect(path) {
    try {
      return toPathInfo(statx(path))
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined
      throw e
    }
  },

  bind(source, target, flags, expect) {
    const src = openDir(source)
    try {
      const dst = openDir(target)
      try {
        const now = toPathInfo(fstatx(dst))
        if (!sameObject(now, expect.target)) {
          throw aborted(`${target} changed between the driver's checks and the mount; refusing, retry`)
        }
        mount(fdPath(src), fdPath(dst), null, MS.BIND, null)
      } finally {
        close(dst)
      }
    } finally {
      close(src)
    }
    if (!needsRemount(flags)) return
    try {
      // Reopen: the path now resolves to the new mount's root, the object the remount must hit.
      const fd = openDir(target)
      try {
        mount(null, fdPath(fd), null, remountBits(flags, statvfs(fdPath(fd)).flags), null)
      } finally {
        close(fd)
      }
    } catch (e) {
      umount2(target, MNT.UMOUNT_NOFOLLOW)
      throw e
    }
  },

  unmount(target) {
    umount2(target, MNT.UMOUNT_NOFOLLOW)
  },

  statfs(path) {
    return statvfs(path)
  },

  mkdir(path) {
    try {
      mkdirSync(path, { mode: 0o750 })
    } catch (e) {
      throw fromNodeError(e, 'mkdir', path)
    }
  },

  rmdir(path) {
    try {
      rmdirSync(path)
    } catch (e) {
      throw fromNodeError(e, 'rmdir', path)
    }
  },
}
