// lseek(2) SEEK_DATA / SEEK_HOLE: walking a sparse file by its data extents,
// so a copy of a mostly empty 1 TiB image reads only what was written and
// leaves the holes as holes. Node's fs has no lseek at all.
//
// Filesystems without extent information (and the kernel's generic fallback)
// report the whole file as one data extent, which simply degrades to a full
// copy. Note that lseek moves the fd's file position; callers that read with
// explicit positions (fs.read with `position`, pread) are unaffected.

import { ErrnoError } from './errno.js'
import { declare, sys, sysAsync } from './libc.js'
import { checkFd } from './ioctl.js'

const SEEK_DATA = 3
const SEEK_HOLE = 4
const ENXIO = 6

const lseekFn = declare<[fd: number, offset: number, whence: number]>('int64_t lseek(int fd, int64_t offset, int whence)')

function lseek(fd: number, offset: number, whence: number, syscall: string): number | null {
  checkFd(fd, syscall)
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${syscall}: invalid offset ${offset}`)
  try {
    return sys(lseekFn, [fd, offset, whence], syscall, `/proc/self/fd/${fd}`)
  } catch (e) {
    // ENXIO: no data (or, for SEEK_HOLE, offset at/after EOF) from `offset` on.
    if (e instanceof ErrnoError && e.errno === ENXIO) return null
    throw e
  }
}

/**
 * The start of the first data extent at or after `offset`, or null if there
 * is no more data (the rest of the file is a hole, or offset >= size).
 */
export function seekData(fd: number, offset: number): number | null {
  return lseek(fd, offset, SEEK_DATA, 'lseek SEEK_DATA')
}

/**
 * The start of the first hole at or after `offset`; the end of the file
 * counts as a hole, so for offset < size this is at most the size. null when
 * offset >= size.
 */
export function seekHole(fd: number, offset: number): number | null {
  return lseek(fd, offset, SEEK_HOLE, 'lseek SEEK_HOLE')
}

const fallocateFn = declare<[fd: number, mode: number, offset: number, len: number]>('int fallocate(int fd, int mode, int64_t offset, int64_t len)')

/**
 * fallocate(2) mode 0: reserves blocks for [offset, offset+len) and extends the file to cover
 * it, without writing them (the extents read as zeros). ENOSPC when the filesystem cannot hold
 * them; EOPNOTSUPP where the filesystem has no preallocation. Always on a worker thread:
 * reserving gigabytes means allocating and recording thousands of extents, which takes long
 * enough (and is rare enough) that the thread hop never matters.
 */
export async function allocate(fd: number, offset: number, len: number): Promise<void> {
  checkFd(fd, 'fallocate')
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(len) || len <= 0) throw new RangeError(`fallocate: invalid range ${offset}+${len}`)
  await sysAsync(fallocateFn, [fd, 0, offset, len], 'fallocate', `/proc/self/fd/${fd}`)
}
