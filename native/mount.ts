// mount(2) and umount2(2).
//
// These are thin on purpose: callers decide the flag combinations, because the
// kernel's rules are subtle (e.g. a bind mount ignores MS_RDONLY on creation
// and needs a second MS_BIND|MS_REMOUNT|MS_RDONLY call to become read-only,
// which reaches none of the copies mount propagation made meanwhile: see
// mount-api.ts for a bind that has its flags before it is attached).

import { checkPath, fns, sys, sysAsync } from './libc.js'

/** mount(2) flags, from <linux/mount.h>. */
export const MS = Object.freeze({
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const)

/** umount2(2) flags. */
export const MNT = Object.freeze({
  FORCE: 1,
  DETACH: 2,
  EXPIRE: 4,
  UMOUNT_NOFOLLOW: 8,
} as const)

/**
 * libc mount(2). Throws ErrnoError (syscall 'mount', path = target, source
 * shown in the message). `target` may be an fdPath() to mount onto an object
 * that was opened (and checked) earlier without re-resolving the path.
 *
 * This runs on the event loop: right for a bind or a remount (tens of
 * microseconds, less than the trip to a worker thread). A new filesystem
 * reads its superblock and may replay a journal first: use mountAsync.
 */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): void {
  sys(fns.mount, mountArgs(source, target, fstype, flags, data), 'mount', target, source ?? undefined)
}

/** mount(2) on a worker thread, for mounts that do I/O (see sysAsync). Same contract as mount(). */
export async function mountAsync(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): Promise<void> {
  await sysAsync(fns.mount, mountArgs(source, target, fstype, flags, data), 'mount', target, source ?? undefined)
}

function mountArgs(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): [string | null, string, string | null, number, string | null] {
  checkPath(target, 'mount')
  if (source !== null) checkPath(source, 'mount')
  if (fstype !== null) checkPath(fstype, 'mount')
  if (data !== null) checkPath(data, 'mount')
  // flags is `unsigned long`; a negative or fractional JS number would be
  // converted to something unintended, and there is no valid use for one.
  if (!Number.isSafeInteger(flags) || flags < 0) throw new RangeError(`mount: invalid flags ${flags}`)
  return [source, target, fstype, flags, data]
}

/**
 * libc umount2(2). Pass MNT.UMOUNT_NOFOLLOW when `target` comes from anything
 * a workload can write to, so a symlink planted there cannot redirect the
 * unmount to some other mount. On the event loop: right for a bind, whose
 * unmount writes nothing.
 */
export function umount2(target: string, flags: number): void {
  sys(fns.umount2, umountArgs(target, flags), 'umount2', target)
}

/**
 * umount2(2) on a worker thread: the last unmount of a filesystem writes back its dirty data
 * and journal (and lets an autoclear loop device go), which can take seconds.
 */
export async function umount2Async(target: string, flags: number): Promise<void> {
  await sysAsync(fns.umount2, umountArgs(target, flags), 'umount2', target)
}

function umountArgs(target: string, flags: number): [string, number] {
  checkPath(target, 'umount2')
  if (!Number.isSafeInteger(flags) || flags < 0) throw new RangeError(`umount2: invalid flags ${flags}`)
  return [target, flags]
}
