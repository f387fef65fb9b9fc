// Internal plumbing shared by loop.ts, quota.ts and fsioc.ts: ioctl(2), plain
// fd opens, ioctl request encoding, and struct-layout checks.
//
// Not re-exported from index.ts except for the pure ioc() encoder: callers
// outside native/ get typed functions, never raw ioctls.

import type { TypeObject } from 'koffi'
import { constants as fsConstants } from 'node:fs'
import { ErrnoError } from './errno.js'
import { checkPath, declare, fns, koffi, sys, sysAsync } from './libc.js'

// O_DIRECTORY/O_NOFOLLOW/O_DIRECT differ between architectures, so take them
// from Node; the rest have the generic values on every Linux arch koffi ships.
export const O_RDONLY = 0
export const O_WRONLY = 1
export const O_RDWR = 2
export const O_CREAT = 0o100
export const O_EXCL = 0o200
export const O_TRUNC = 0o1000
export const O_CLOEXEC = 0o2000000
export const O_NOFOLLOW = fsConstants.O_NOFOLLOW
export const O_DIRECTORY = fsConstants.O_DIRECTORY

// ioctl(2) is variadic in C, so it is declared with `...` (see open() in
// libc.ts for why that matters); every call passes the type of the third
// argument explicitly: 'void *' with a Buffer, or 'long' with an integer.
// glibc's wrapper reads that argument as a full machine word, hence 'long'
// rather than 'int' for integer arguments such as FICLONE's source fd.
const ioctlFn = declare<[fd: number, request: number, argType: 'void *' | 'long', arg: Buffer | number]>(
  'int ioctl(int fd, unsigned long request, ...)',
)
const openModeFn = declare<[path: string, flags: number, modeType: 'unsigned int', mode: number]>(
  'int open(const char *path, int flags, ...)',
)

/**
 * ioctl(fd, request, arg). `name` is the request's name from the kernel
 * headers; errors read "ioctl FICLONE(/path): EOPNOTSUPP (...)" so a log line
 * says which request failed without a table lookup.
 */
export function ioctl(fd: number, request: number, name: string, arg: Buffer | number, path?: string): number {
  const isBuf = typeof arg !== 'number'
  return sys(ioctlFn, [fd, request, isBuf ? 'void *' : 'long', arg], `ioctl ${name}`, path)
}

// koffi cannot call a variadic function off-thread, so the worker-thread ioctl is declared with
// a fixed third argument. That is sound for glibc's ioctl on the architectures koffi ships for
// Linux: integer and pointer arguments travel in the same registers whether the callee is
// variadic or not, and on x86-64 the only difference, %al (the count of vector registers
// used), merely tells a va_start prologue whether to spill them.
const ioctlPtrFn = declare<[fd: number, request: number, arg: Buffer]>('int ioctl(int fd, unsigned long request, void *arg)')
const ioctlLongFn = declare<[fd: number, request: number, arg: number]>('int ioctl(int fd, unsigned long request, long arg)')

/** ioctl() on a worker thread, for requests that can block in the kernel (see sysAsync). */
export function ioctlAsync(fd: number, request: number, name: string, arg: Buffer | number, path?: string): Promise<number> {
  return typeof arg === 'number'
    ? sysAsync(ioctlLongFn, [fd, request, arg], `ioctl ${name}`, path)
    : sysAsync(ioctlPtrFn, [fd, request, arg], `ioctl ${name}`, path)
}

/** open(2) without O_CREAT; `path` is checked for NULs. */
export function openFd(path: string, flags: number): number {
  checkPath(path, 'open')
  if ((flags & O_CREAT) !== 0) throw new RangeError('openFd: use createFd for O_CREAT')
  return sys(fns.open, [path, flags], 'open', path)
}

/** open(2) with O_CREAT and an explicit mode (the process umask still applies). */
export function createFd(path: string, flags: number, mode: number): number {
  checkPath(path, 'open')
  return sys(openModeFn, [path, flags | O_CREAT, 'unsigned int', mode], 'open', path)
}

/**
 * close(2), ignoring failure. For cleanup paths, where a close error must not
 * replace the error (or result) being returned: Linux releases the descriptor
 * even when close reports an error, so there is nothing to retry.
 */
export function closeQuietly(fd: number): void {
  try {
    fns.close(fd)
  } catch {
    /* ignore */
  }
}

/**
 * closeQuietly on a worker thread, for the one close that does real work: the last close of a
 * loop device whose detach was asked for performs the detach (see loopDetachAsync).
 */
export async function closeQuietlyAsync(fd: number): Promise<void> {
  await sysAsync(fns.close, [fd], 'close').catch(() => undefined)
}

/** Opens `path`, runs `fn(fd)`, and always closes the fd. */
export function withFd<T>(path: string, flags: number, fn: (fd: number) => T): T {
  const fd = openFd(path, flags)
  try {
    return fn(fd)
  } finally {
    closeQuietly(fd)
  }
}

// <asm-generic/ioctl.h>. powerpc and mips use 3 direction bits and 13 size
// bits with different direction values; koffi ships ppc64le, so handle it.
const ALT_IOC = process.arch === 'ppc64' || process.arch.startsWith('mips')
const IOC_NONE = ALT_IOC ? 1 : 0
const IOC_WRITE = ALT_IOC ? 4 : 1
const IOC_READ = 2
const IOC_SIZEBITS = ALT_IOC ? 13 : 14

/**
 * The _IOC() macro: request number for (direction, type, nr, size). Returned
 * as an unsigned 32-bit number, the way `unsigned long request` sees it.
 */
export function ioc(dir: 'none' | 'r' | 'w' | 'rw', type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << IOC_SIZEBITS) throw new RangeError(`ioc: size ${size} out of range`)
  const d = dir === 'none' ? IOC_NONE : dir === 'r' ? IOC_READ : dir === 'w' ? IOC_WRITE : IOC_READ | IOC_WRITE
  // 2^30 multiplication instead of << keeps the result unsigned.
  return d * 2 ** 30 + ((size << 16) | ((type & 0xff) << 8) | (nr & 0xff))
}

/**
 * Checks a koffi-declared struct against the offsets and size that the
 * encoders in this folder hard-code (which were taken from the C headers with
 * offsetof/sizeof, see the tests). Run once, at first native use, so a
 * mistake in either fails loudly instead of corrupting kernel arguments.
 */
export function checkLayout(
  what: string,
  type: TypeObject,
  size: number,
  offsets: Readonly<Record<string, number>>,
): void {
  if (type.size !== size) throw new Error(`native: ${what} is ${type.size} bytes, expected ${size}`)
  for (const [name, off] of Object.entries(offsets)) {
    const m = type.members?.[name]
    if (m === undefined) throw new Error(`native: ${what} has no member ${name}`)
    if (m.offset !== off) throw new Error(`native: ${what}.${name} is at ${m.offset}, expected ${off}`)
  }
}

/** koffi, for modules that declare struct types for checkLayout. */
export { koffi }

/** EBADF unless `fd` is a plausible descriptor (koffi would wrap a bad value). */
export function checkFd(fd: number, syscall: string): void {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new ErrnoError(9 /* EBADF */, syscall)
}
