// A bind mount that has its flags (readonly, noexec, nosuid, ...) from the moment it appears at
// its target.
//
// Why the moment matters: in a cluster the node plugin sees kubelet's directory through a
// Bidirectional (rshared) mount, so attaching a mount at a target attaches a copy of it in the
// host's namespace too, and the pod gets that copy. A copy takes the flags the mount has when the
// copy is made; changing them later (a bind remount) changes the plugin's own mount only. A bind
// made first and remounted after gave pods volumes without mountOptions noexec, and readonly
// volumes they could write to (test/publish-propagation.test.ts).
//
// Two ways, the first wherever the kernel has it:
// - open_tree clones the source as a detached mount, mount_setattr sets its flags while nothing
//   can see it, move_mount attaches it (Linux 5.12). Nothing can be left half made: a detached
//   mount goes away with its fd, even when the process dies.
// - Older kernels answer ENOSYS. The bind is then made on a scratch mount point in the driver's
//   own folder, remounted with the flags there, and bound from there onto the target: a bind
//   copies the mount it is made from, flags included, and so does every copy propagation makes
//   of it. The scratch mount is detached afterwards, on failure too. MS_MOVE from the scratch
//   point would do as well, but the kernel refuses to move a mount whose parent is shared
//   (do_move_mount), so the scratch folder would first need a private mount of its own; a second
//   bind needs nothing of the kind. One fixed name per kind of object is enough: the attach is
//   synchronous, so no two calls use it at once. One a crash left mounted is detached when the
//   next process starts and before each use.
import { closeSync, constants as fsConstants, mkdirSync, openSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '../common/log.js'
import { close, fdPath, fromNodeError, isErrno, MNT, MS, mount, mountSetattr, moveMount, openTree, statvfs, statx, umount2 } from '../native/index.js'
import { mountAttr, remountBits, type BindFlags } from './mountflags.js'

export interface FlaggedBindOptions {
  /** A folder of the driver's own, which no CO path can lead into: scratch mount points for older kernels. */
  scratchDir: string
  /** false: always the older kernels' way (to test it on a kernel that has the new API). */
  mountApi?: boolean
  log?: Logger
}

/**
 * Makes a bind of what the O_PATH fd `src` shows onto the object behind the O_PATH fd `dst`
 * (a directory when `dir`, else a file), carrying `flags` from the start. On failure nothing is
 * attached at `dst` and nothing is left in the scratch folder. Where the mount lands is the
 * caller's to prove, as for any mount onto an fd (landedAt).
 */
export type AttachFlagged = (src: number, dst: number, flags: BindFlags, dir: boolean) => void

export function flaggedBind(o: FlaggedBindOptions): AttachFlagged {
  let api = o.mountApi ?? true
  const points = { dir: path.join(o.scratchDir, 'dir'), file: path.join(o.scratchDir, 'file') }
  const made = new Set<string>()
  detachAll(points.dir)
  detachAll(points.file)
  return (src, dst, flags, dir) => {
    if (api) {
      try {
        viaMountApi(src, dst, flags)
        return
      } catch (e) {
        // Only open_tree and mount_setattr can say ENOSYS, both before anything is attached.
        if (!isErrno(e, 'ENOSYS')) throw e
        api = false
        o.log?.info({ scratchDir: o.scratchDir, syscall: e.syscall }, 'this kernel has no mount_setattr (Linux < 5.12): binds with flags are prepared in the scratch folder')
      }
    }
    const point = dir ? points.dir : points.file
    if (!made.has(point)) {
      makePoint(point, dir)
      made.add(point)
    }
    viaScratch(src, dst, flags, point)
  }
}

function viaMountApi(src: number, dst: number, flags: BindFlags): void {
  const tree = openTree(src)
  try {
    mountSetattr(tree, mountAttr(flags))
    moveMount(tree, dst)
  } finally {
    // After move_mount the mount stays where it is; before it, this takes the mount away.
    close(tree)
  }
}

/** The scratch point is the driver's own: paths to it are trusted, unlike the CO's. */
function viaScratch(src: number, dst: number, flags: BindFlags, point: string): void {
  detachAll(point)
  mount(fdPath(src), point, null, MS.BIND, null)
  try {
    mount(null, point, null, remountBits(flags, statvfs(point).flags), null)
    mount(point, fdPath(dst), null, MS.BIND, null)
  } finally {
    umount2(point, MNT.DETACH | MNT.UMOUNT_NOFOLLOW)
  }
}

function makePoint(point: string, dir: boolean): void {
  try {
    mkdirSync(path.dirname(point), { recursive: true, mode: 0o700 })
    if (dir) mkdirSync(point, { mode: 0o700 })
    else closeSync(openSync(point, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW, 0o600))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromNodeError(e, dir ? 'mkdir' : 'open', point)
  }
}

/** Detaches whatever is mounted at point (a crash may have left several layers). */
function detachAll(point: string): void {
  for (;;) {
    try {
      if (!statx(point).isMountRoot) return
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return
      throw e
    }
    umount2(point, MNT.DETACH | MNT.UMOUNT_NOFOLLOW)
  }
}
