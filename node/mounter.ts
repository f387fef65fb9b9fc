// The seam between the node service and the kernel. The service asks questions (what is at this
// path, is it a mount root, which object does it show) and requests effects (bind with flags,
// unmount) through this interface; the real implementation calls libc through native/, and
// service tests swap in a fake.
//
// Which calls run on the event loop and which on a worker thread is decided per call, by what
// the kernel does in it. Measured with bench/stall.ts (as root: npm run build && npx tsc -p
// bench/tsconfig.json && node dist/bench/stall.js) on a 2-core machine under load, p50:
// - synchronous: statx, bind mounts, remounts and the unmount of a bind. A bind mount + umount2
//   pair costs 46 µs on the event loop and 72-114 µs through koffi's .async (the hop to libuv's
//   pool and back, twice); they touch no disk, and NodePublishVolume is the hot path. bind() with
//   flags (open_tree, mount_setattr, move_mount) costs what one without does, 22 µs p50 here;
//   the bind-then-remount it replaced cost 31 µs, the scratch way of older kernels 67 µs.
// - asynchronous (Promise): whatever reads or writes a disk and can therefore take seconds on a
//   slow or stuck one. LOOP_CONFIGURE costs 0.1-0.3 ms sync, 0.2-0.9 ms async for a clean image,
//   but 13.5 ms (p99 78 ms) for one with 32 MiB of dirty pages (it writes them back before
//   switching to direct I/O): an image just made by mkfs or a copy. mount(2) of a filesystem
//   reads its superblock and may replay a journal; the unmount that takes a filesystem's last
//   mount down writes back its dirty data and journal, and a loop device's detach (the last close)
//   drains and writes back the device. The hop is noise against those, and while
//   one of them is in the kernel the event loop goes on answering other volumes' RPCs and Probe.
import { closeSync, constants as fsConstants, lstatSync, mkdirSync, openSync, rmdirSync, unlinkSync } from 'node:fs'
import { aborted, failedPrecondition } from '../common/errors.js'
import {
  close, fdPath, fromNodeError, fstatx, loopAttachAsync, loopDetachAsync, loopSetCapacity, MNT, MS, mount, mountAsync, openDir, openPath, settleRenames, statvfs, statx, umount2, umount2Async, isErrno,
  type FileId, type StatVfs, type Statx,
} from '../native/index.js'
import { flaggedBind, type FlaggedBindOptions } from './flagged-bind.js'
import { asksForFlags, type BindFlags } from './mountflags.js'

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
   * Bind-mounts source onto target (directories, or a device node onto a file) with flags, which
   * the mount has from the moment it appears at target, so every copy mount propagation makes of
   * it has them too (node/flagged-bind.ts). Both ends are opened O_PATH|O_NOFOLLOW and checked
   * against `expect` first, and the mount is made between the opened objects, so a symlink
   * swapped in after the caller's checks cannot redirect the mount. Afterwards the path must
   * show the new mount: if it was swapped away before the mount landed, the mount is taken down
   * through the fd and the call is ABORTED. A failure before that attaches nothing.
   */
  bind(source: string, target: string, flags: BindFlags, expect: { target: PathInfo }): void
  /**
   * Attaches an image file to a loop device and mounts its filesystem on the (checked) staging
   * directory while the device is held open; with autoclear the device then lives exactly as
   * long as the mount. Returns the device. LOOP_CONFIGURE and mount(2) run off the event loop.
   */
  mountImage(image: string, staging: string, fsType: string, flags: number, data: string, expect: { target: PathInfo }): Promise<string>
  /**
   * Mounts an NFS export (source `addr:/path`, options planned by node/nfs-options.ts) on the
   * checked directory target, off the event loop: the kernel talks to the server inside mount(2),
   * for as long as the options' timeouts allow.
   */
  mountNfs(source: string, target: string, flags: number, data: string, expect: { target: PathInfo }): Promise<void>
  /** Attaches a raw image to a loop device that stays until detachImage (off the event loop). */
  attachImage(image: string): Promise<string>
  /** Detaches the loop device if it is still backed by image (the detach runs off the event loop). */
  detachImage(device: string, image: string): Promise<void>
  /** Tells a loop device its backing file grew. */
  refreshLoopCapacity(device: string): void
  /** Creates an empty regular file (a block volume's target); parent must exist. */
  createFile(path: string): void
  /**
   * Removes an empty regular file (what createFile made); anything else there, a file with
   * content included, is refused with FAILED_PRECONDITION and left alone. Never follows a symlink.
   */
  removeFile(path: string): void
  /** Unmounts target without following a symlink there; for binds (nothing to write back). */
  unmount(target: string): void
  /**
   * unmount() off the event loop, for what may be a filesystem's last mount: the kernel writes
   * its dirty data and journal back before the call returns.
   */
  unmountFilesystem(target: string): Promise<void>
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

/**
 * A bind mount's root shows the same inode on the same device as the directory it binds; a loop
 * device's backing file (loopBackingId) is the same file as the image it was attached from.
 */
export function sameObject(a: FileId, b: FileId): boolean {
  return a.dev === b.dev && a.ino === b.ino
}

/**
 * After a mount onto the object behind fd `dst` (what the caller saw as `under`): lets renames
 * in flight finish, then opens `path` (O_PATH, no symlink followed) and proves it shows a new
 * mount root, `ok` saying whether that root is what was mounted. Returns the open fd of the mount
 * root. Otherwise the mount sits wherever the object went: it is taken down through `dst`
 * (umount2's lookup of /proc/self/fd/N lands on the object and crosses into the mount on it, so
 * no path is trusted) and the call is ABORTED. Only root can make a mount root appear at a path
 * and a mount point can no longer be renamed, so a swap by anyone else cannot fake the answer.
 */
export function landedAt(dst: number, path: string, under: PathInfo, ok: (now: PathInfo) => boolean): number {
  settleRenames(dst)
  let fd: number | undefined
  try {
    fd = under.type === 'dir' ? openDir(path) : openPath(path)
    const now = toPathInfo(fstatx(fd))
    if (now.isMountRoot && !sameObject(now, under) && ok(now)) return fd
  } catch {
    // Gone, or a symlink now: either way not our mount.
  }
  if (fd !== undefined) close(fd)
  umount2(fdPath(dst), MNT.DETACH)
  throw aborted(`${path} was replaced while the driver mounted onto it; the mount was taken down, retry`)
}

/** What is at path (statx, symlinks followed), or undefined when nothing is; Mounter.inspect. */
export function inspectPath(path: string): PathInfo | undefined {
  try {
    return toPathInfo(statx(path))
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined
    throw e
  }
}

/**
 * The Mounter of a running node plugin: libc through native/. `scratchDir`, a folder of the
 * driver's own, is used only on kernels older than Linux 5.12 (see flagged-bind.ts).
 */
export function nativeMounter(o: FlaggedBindOptions): Mounter {
  const attachFlagged = flaggedBind(o)
  return {
    inspect: inspectPath,

    bind(source, target, flags, expect) {
      const dirs = expect.target.type === 'dir'
      const src = dirs ? openDir(source) : openPath(source)
      try {
        const dst = dirs ? openDir(target) : openPath(target)
        try {
          const srcInfo = toPathInfo(fstatx(src))
          if (!sameObject(toPathInfo(fstatx(dst)), expect.target)) {
            throw aborted(`${target} changed between the driver's checks and the mount; refusing, retry`)
          }
          if (asksForFlags(flags)) attachFlagged(src, dst, flags, dirs)
          else mount(fdPath(src), fdPath(dst), null, MS.BIND, null)
          // The mount sits on the object opened above, wherever it now is. Prove the path still
          // leads to it; a swap before the mount would otherwise leave it at another name.
          close(landedAt(dst, target, expect.target, (now) => sameObject(now, srcInfo)))
        } finally {
          close(dst)
        }
      } finally {
        close(src)
      }
    },

    unmount(target) {
      umount2(target, MNT.UMOUNT_NOFOLLOW)
    },

    async unmountFilesystem(target) {
      await umount2Async(target, MNT.UMOUNT_NOFOLLOW)
    },

    async mountImage(image, staging, fsType, flags, data, expect) {
      const dst = openDir(staging)
      try {
        if (!sameObject(toPathInfo(fstatx(dst)), expect.target)) {
          throw aborted(`${staging} changed between the driver's checks and the mount; refusing, retry`)
        }
        const att = await loopAttachAsync(image, {
          autoclear: true, directIo: true,
          whileOpen: (a) => mountAsync(a.device, fdPath(dst), fsType, flags, data || null),
        })
        // Taking a misplaced filesystem down lets autoclear release the loop device too.
        close(landedAt(dst, staging, expect.target, (now) => now.type === 'dir'))
        return att.device
      } finally {
        close(dst)
      }
    },

    async mountNfs(source, target, flags, data, expect) {
      const dst = openDir(target)
      try {
        if (!sameObject(toPathInfo(fstatx(dst)), expect.target)) {
          throw aborted(`${target} changed between the driver's checks and the mount; refusing, retry`)
        }
        await mountAsync(source, fdPath(dst), 'nfs4', flags, data)
        close(landedAt(dst, target, expect.target, (now) => now.type === 'dir'))
      } finally {
        close(dst)
      }
    },

    async attachImage(image) {
      return (await loopAttachAsync(image, { directIo: true })).device
    },

    async detachImage(device, image) {
      await loopDetachAsync(device, { backingFile: image })
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
}
