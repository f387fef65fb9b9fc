// Errno-carrying errors for the native layer.
//
// Everything here is pure JS: the name table comes from Node's own
// os.constants.errno and the message text from a small table (falling back to
// libuv's map), so building or formatting an error never calls back into libc.
// That matters because a libc call made while reporting a failure could
// clobber the errno we are trying to report.

import { constants } from 'node:os'
import { getSystemErrorMap } from 'node:util'

// os.constants.errno maps name -> number; several names share a number on
// Linux (EAGAIN/EWOULDBLOCK, EDEADLK/EDEADLOCK, ENOTSUP/EOPNOTSUPP). The first
// name wins, which matches the order Node itself enumerates them in and hence
// the `code` Node's fs errors carry (e.g. 'EAGAIN', 'ENOTSUP').
const NAME_BY_ERRNO: ReadonlyMap<number, string> = (() => {
  const m = new Map<number, string>()
  for (const [name, num] of Object.entries(constants.errno)) {
    if (!m.has(num)) m.set(num, name)
  }
  return m
})()

const ERRNO_BY_NAME: ReadonlyMap<string, number> = new Map(
  Object.entries(constants.errno),
)

// glibc's strerror() text for the errnos a mount/stat driver actually sees,
// so messages read the same as in mount(8) or strace output.
const MESSAGES: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  ENOTBLK: 'Block device required',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  ENAMETOOLONG: 'File name too long',
  ENOSYS: 'Function not implemented',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  ENOTSUP: 'Operation not supported',
  ESTALE: 'Stale file handle',
  EDQUOT: 'Disk quota exceeded',
  EOVERFLOW: 'Value too large for defined data type',
  ETIMEDOUT: 'Connection timed out',
  ENOTCONN: 'Transport endpoint is not connected',
}

let uvMap: Map<number, [string, string]> | undefined

/** Symbolic name for an errno number ('ENOENT'), or `ERRNO_<n>` if unknown. */
export function errnoName(errno: number): string {
  return NAME_BY_ERRNO.get(errno) ?? `ERRNO_${errno}`
}

/** Errno number for a symbolic name, or undefined if Node does not know it. */
export function errnoNumber(name: string): number | undefined {
  return ERRNO_BY_NAME.get(name)
}

/** Human-readable text for an errno, without calling libc. */
export function errnoMessage(errno: number): string {
  const name = NAME_BY_ERRNO.get(errno)
  const known = name === undefined ? undefined : MESSAGES[name]
  if (known !== undefined) return known
  // libuv's table is lower-case but covers every errno Node knows about.
  uvMap ??= getSystemErrorMap()
  const uv = uvMap.get(-errno)
  if (uv !== undefined) return uv[1].charAt(0).toUpperCase() + uv[1].slice(1)
  return `Unknown error ${errno}`
}

/**
 * A failed system call. `code` uses the same names as Node's fs errors, so
 * callers can test `e.code === 'ENOENT'` regardless of which layer failed.
 */
export class ErrnoError extends Error {
  /** Positive errno value (Node's fs errors use negative ones). */
  readonly errno: number
  readonly code: string
  readonly syscall: string
  // `declare`: with ES2022 class fields a plain `path?: string` would define
  // an own property holding undefined; like Node's errors, leave it absent.
  declare readonly path?: string
  /** Second operand for two-path calls, e.g. the source of mount(2). */
  declare readonly source?: string

  constructor(errno: number, syscall: string, path?: string, source?: string) {
    const code = errnoName(errno)
    let where = syscall
    if (path !== undefined && source !== undefined) where = `${syscall}(${source} -> ${path})`
    else if (path !== undefined) where = `${syscall}(${path})`
    super(`${where}: ${code} (${errnoMessage(errno)})`)
    this.name = 'ErrnoError'
    this.errno = errno
    this.code = code
    this.syscall = syscall
    if (path !== undefined) this.path = path
    if (source !== undefined) this.source = source
  }
}

/** True if `e` is an ErrnoError, optionally with the given code. */
export function isErrno(e: unknown, code?: string): e is ErrnoError {
  return e instanceof ErrnoError && (code === undefined || e.code === code)
}

/**
 * Converts a Node fs/child error (string `code`, usually negative `errno`)
 * into an ErrnoError so the rest of the driver handles one error shape.
 * Anything that does not carry an errno is re-thrown unchanged: it is a bug or
 * a different class of failure and must not be disguised as a syscall error.
 */
export function fromNodeError(e: unknown, syscall: string, path?: string): ErrnoError {
  if (e instanceof ErrnoError) return e
  if (typeof e === 'object' && e !== null) {
    const { errno, code } = e as { errno?: unknown; code?: unknown }
    let num: number | undefined
    // Prefer the numeric errno: it is what the kernel said. The code string
    // is the fallback for errors built by hand (or by libraries) without it.
    if (typeof errno === 'number' && Number.isInteger(errno) && errno !== 0) {
      num = Math.abs(errno)
    } else if (typeof code === 'string') {
      num = ERRNO_BY_NAME.get(code)
    }
    if (num !== undefined) {
      const nodePath = (e as { path?: unknown }).path
      const p = path ?? (typeof nodePath === 'string' ? nodePath : undefined)
      const err = new ErrnoError(num, syscall, p)
      ;(err as { cause?: unknown }).cause = e
      return err
    }
  }
  throw e
}
