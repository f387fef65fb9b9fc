// open_tree(2), mount_setattr(2) and move_mount(2): mounts handled through file descriptors.
//
// What they give that mount(2) cannot: a bind mount that exists, detached from every namespace,
// before it is attached anywhere. Its per-mount flags can be set while nothing else can see it,
// and attaching it is when the kernel copies it to the peers of the place it lands (mount
// propagation), each copy taking the flags the mount has then. With mount(2) a bind starts with
// its source's flags, and the MS_REMOUNT that adds more changes only the mount it is given, never
// the copies propagation already made.
//
// open_tree and move_mount came with Linux 5.2, mount_setattr with 5.12, glibc's wrappers with
// 2.36. Where the kernel lacks them it answers ENOSYS, and so do these functions where libc lacks
// the wrapper: a caller has one condition to fall back on.
//
// On the event loop, as a bind mount(2) is: none of them reads or writes a disk.

import { ErrnoError } from './errno.js'
import { AT_EMPTY_PATH, declare, sys } from './libc.js'

/** mount_setattr(2) attributes, from <linux/mount.h>. The atime ones are values, not bits. */
export const MOUNT_ATTR = Object.freeze({
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  /** The mask of the atime field: clear it to set any of the three values below. */
  ATIME: 0x70,
  RELATIME: 0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
} as const)

/** What mount_setattr turns on (`set`) and off (`clear`); what neither names stays as it is. */
export interface MountAttr {
  set: number
  clear: number
}

const OPEN_TREE_CLONE = 1
const OPEN_TREE_CLOEXEC = 0o2000000 // O_CLOEXEC, generic on every arch koffi ships for Linux
const MOVE_MOUNT_F_EMPTY_PATH = 0x4
const MOVE_MOUNT_T_EMPTY_PATH = 0x40
const MOUNT_ATTR_SIZE_VER0 = 32 // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd }
const ENOSYS = 38

const fns = {
  openTree: declare<[dfd: number, path: string, flags: number]>('int open_tree(int dfd, const char *path, unsigned int flags)'),
  mountSetattr: declare<[dfd: number, path: string, flags: number, attr: Buffer, size: number]>(
    'int mount_setattr(int dfd, const char *path, unsigned int flags, void *attr, size_t size)',
  ),
  moveMount: declare<[fromDfd: number, fromPath: string, toDfd: number, toPath: string, flags: number]>(
    'int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)',
  ),
}

function wrapper<K extends keyof typeof fns>(name: K, syscall: string): (typeof fns)[K] {
  if (!fns[name].resolves()) throw new ErrnoError(ENOSYS, syscall)
  return fns[name]
}

/**
 * open_tree(fd, "", OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_EMPTY_PATH): a new bind mount of what
 * `fd` (an O_PATH fd) shows, not recursive (as MS_BIND without MS_REC), attached nowhere. Returns
 * its fd. Closing that fd before moveMount() attached the mount takes the mount away: an
 * unattached one never outlives its fd, not even when the process dies.
 */
export function openTree(fd: number): number {
  return sys(wrapper('openTree', 'open_tree'), [fd, '', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH], 'open_tree')
}

/** mount_setattr(fd, "", AT_EMPTY_PATH, attr): changes the flags of the one mount `fd` shows. */
export function mountSetattr(fd: number, attr: MountAttr): void {
  if (!Number.isSafeInteger(attr.set) || !Number.isSafeInteger(attr.clear) || attr.set < 0 || attr.clear < 0) {
    throw new RangeError(`mount_setattr: invalid attributes ${JSON.stringify(attr)}`)
  }
  const buf = Buffer.alloc(MOUNT_ATTR_SIZE_VER0)
  // All Linux targets koffi ships prebuilt binaries for are little-endian (as in stat.ts).
  buf.writeBigUInt64LE(BigInt(attr.set), 0)
  buf.writeBigUInt64LE(BigInt(attr.clear), 8)
  sys(wrapper('mountSetattr', 'mount_setattr'), [fd, '', AT_EMPTY_PATH, buf, MOUNT_ATTR_SIZE_VER0], 'mount_setattr')
}

/**
 * move_mount(tree, "", to, "", MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH): attaches the
 * mount behind `tree` (from openTree) onto the object behind `to`, an O_PATH fd, without walking
 * a path again, as mount(2) onto fdPath(to) does.
 */
export function moveMount(tree: number, to: number): void {
  sys(wrapper('moveMount', 'move_mount'), [tree, '', to, '', MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH], 'move_mount')
}
