// Shared rig for root tests that make loop-mounted filesystems in their test folder.
import { realpathSync } from 'node:fs'
import { listLoopDevices, loopBackingId, loopDetach, MNT, parseBackingFile, statx, umount2, type FileId } from '../../native/index.js'

/** Unmounts every layer at m, lazily if it must; never throws. */
export function unmountQuietly(m: string): void {
  for (let i = 0; i < 4; i++) {
    try {
      if (!statx(m).isMountRoot) return
      umount2(m, MNT.UMOUNT_NOFOLLOW)
    } catch {
      try {
        umount2(m, MNT.DETACH | MNT.UMOUNT_NOFOLLOW)
      } catch {
        return
      }
    }
  }
}

/**
 * Registers, before the test folder exists (tap removes it in its own teardown, and removing it
 * through a live mount would delete a filesystem's content), a teardown that unmounts what the
 * test tracked and detaches every loop device backed by a file in the folder. Returns the folder
 * (symlinks resolved, as sysfs shows backing files) and the list to push mount points onto.
 */
export function loopRig(t: { teardown(fn: () => unknown): void; testdir(): string }): { dir: string; mounts: string[] } {
  const mounts: string[] = []
  let dir = ''
  t.teardown(() => {
    for (const m of mounts.reverse()) unmountQuietly(m)
    for (const d of listLoopDevices()) {
      if (dir !== '' && parseBackingFile(d.backingFile).path.startsWith(dir + '/')) {
        try {
          loopDetach(d.device)
        } catch (e) {
          console.error(`teardown: could not detach ${d.device}: ${String(e)}`)
        }
      }
    }
  })
  dir = realpathSync(t.testdir())
  return { dir, mounts }
}

/**
 * Detaches every loop device backed by one of these files (same st_dev and inode), whatever path
 * sysfs prints for it: for tests that attach through a view of their folder that is gone by
 * teardown, where a match on the sysfs text would miss the device. Never throws.
 */
export function detachLoopsBacking(files: FileId[]): void {
  for (const device of loopsBacking(files)) {
    try {
      loopDetach(device)
    } catch (e) {
      console.error(`teardown: could not detach ${device}: ${String(e)}`)
    }
  }
}

/** The bound loop devices backed by one of these files (same st_dev and inode). */
export function loopsBacking(files: FileId[]): string[] {
  return listLoopDevices().filter((l) => {
    const b = loopBackingId(l.device)
    return b !== undefined && files.some((f) => f.dev === b.dev && f.ino === b.ino)
  }).map((l) => l.device)
}
