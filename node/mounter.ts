// The seam between the node service and the kernel. The service asks questions (what is at this
// path, is it a mount root, which object does it show) and requests effects (bind, remount,
// unmount) through this interface; the real implementation calls libc through native/, and
// service tests swap in a fake. All methods are synchronous: each is one or two syscalls of a
// few microseconds, cheaper than a trip through the thread pool.
import { closeSync, constants as fsConstants, lstatSync, mkdirSync, openSync, rmdirSync, unlinkSync } from 'node:fs'
import { aborted, failedPrecondition } from '../common/errors.js'
import {
  close, fdPath, fromNodeError, fstatx, loopAttach, loopDetach, loopSetCapacity, MNT, MS, mount, openDir, openPath, statvfs, statx, umount2, isErrno,
  type StatVfs, type Statx,
} from '../native/index.js'
import { type BindFlags, needsRemount, remountBits } from './mountflags.js'

export interface PathInfo {
  type: Statx['type']
  dev: string
  ino: bigint
  isMountRoot: boolean
  /** For device nodes: the device they stand for, "major:minor". */
  rdev?: string
}

export interface Mounter {
  /** What is at path, without following a final symlink; undefined when nothing is. */
  inspect(path: string): PathInfo | undefined
  /**
   * Bind-mounts source onto target (directories, or a device node onto a file), then applies
   * flags. Both ends are opened O_PATH|O_NOFOLLOW and checked against `expect` first, and the
   * mount is made between the opened objects (/proc/self/fd/N), so a symlink swapped in after
   * the caller's checks cannot redirect the mount. A failed remount undoes the bind.
   */
  bind(source: string, target: string, flags: BindFlags, expect: { target: PathInfo }): void
  /**
   * Attaches an image file to a loop device and mounts its filesystem on the (checked) staging
   * directory while the device is held open; with autoclear the device then lives exactly as
   * long as the mount. Returns the device.
   */
  mountImage(image: string, staging: string, fsType: string, flags: number, data: string, expect: { target: PathInfo }): string
  /** Attaches a raw image to a loop device that stays until detachImage. */
  attachImage(image: string): string
  /** Detaches the loop device if it is still backed by image. */
  detachImage(device: string, image: string): void
  /** Tells a loop device its backing file grew. */
  refreshLoopCapacity(device: string): void
  /** Creates an empty regular file (a block volume's target); parent must exist. */
  createFile(path: string): void
  /**
   * Removes an empty regular file (what createFile made); anything else there, a file with
   * content included, is refused with FAILED_PRECONDITION and left alone. Never follows a symlink.
   */
  removeFile(path: string): void
  /** Unmounts target without following a symlink there. */
  unmount(target: string): void
  statfs(path: string): StatVfs
  /** mkdir for a target the driver creates (mode 0750); parent must exist. */
  mkdir(path: string): void
  /** Removes an empty directory; never follows a symlink, never removes content. */
  rmdir(path: string): void
}

export function toPathInfo(s: Statx): PathInfo {
  const info: PathInfo = { type: s.type, dev: s.dev, ino: s.ino, isMountRoot: s.isMountRoot }
  if (s.type === 'block' || s.type === 'char') info.rdev = `${s.rdevMajor}:${s.rdevMinor}`
  return info
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
    const dirs = expect.target.type === 'dir'
    const src = dirs ? openDir(source) : openPath(source)
    try {
      const dst = dirs ? openDir(target) : openPath(target)
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
      const fd = dirs ? openDir(target) : openPath(target)
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

  mountImage(image, staging, fsType, flags, data, expect) {
    const dst = openDir(staging)
    try {
      if (!sameObject(toPathInfo(fstatx(dst)), expect.target)) {
        throw aborted(`${staging} changed between the driver's checks and the mount; refusing, retry`)
      }
      const att = loopAttach(image, {
        autoclear: true, directIo: true,
        whileOpen: (a) => mount(a.device, fdPath(dst), fsType, flags, data || null),
      })
      return att.device
    } finally {
      close(dst)
    }
  },

  attachImage(image) {
    return loopAttach(image, { directIo: true }).device
  },

  detachImage(device, image) {
    loopDetach(device, { backingFile: image })
  },

  refreshLoopCapacity(device) {
    loopSetCapacity(device)
  },

  createFile(path) {
    try {
      closeSync(openSync(path, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW, 0o600))
    } catch (e) {
      throw fromNodeError(e, 'open', path)
    }
  },

  removeFile(path) {
    let st
    try {
      st = lstatSync(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
      throw fromNodeError(e, 'lstat', path)
    }
    if (!st.isFile() || st.size !== 0) throw failedPrecondition(`${path} is not an empty file the driver made; not removing it`)
    try {
      unlinkSync(path)
    } catch (e) {
      throw fromNodeError(e, 'unlink', path)
    }
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
