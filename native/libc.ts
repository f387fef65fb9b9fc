// Internal: the one place that touches koffi.
//
// Both koffi and libc.so.6 are loaded on first use rather than at import time,
// so pure helpers (parseMountInfo, ErrnoError) and the test suites for them
// work on machines where the native addon cannot load (a macOS laptop, a CI
// image without the prebuilt binary). koffi is pulled in with require() for
// the same reason: a static `import` would load the addon eagerly.

import { createRequire } from 'node:module'
import type * as KoffiNs from 'koffi'
import { ErrnoError } from './errno.js'

export type Koffi = typeof KoffiNs.default
type KoffiFn = ReturnType<KoffiNs.LibraryHandle['func']>

let koffiMod: Koffi | undefined
let libcHandle: KoffiNs.LibraryHandle | undefined

export function koffi(): Koffi {
  if (koffiMod === undefined) {
    const require = createRequire(import.meta.url)
    koffiMod = require('koffi') as Koffi
  }
  return koffiMod
}

function libc(): KoffiNs.LibraryHandle {
  // The soname, not a path: the dynamic linker already has this exact object
  // mapped (Node links against it), so this resolves to the same libc and the
  // same thread-local errno that koffi.errno() reads.
  libcHandle ??= koffi().load('libc.so.6')
  return libcHandle
}

/**
 * A libc function declared through koffi. Calling it runs the call on the calling thread (the
 * event loop); `.async` runs it on one of libuv's worker threads and calls `done` back on the
 * event loop. Variadic prototypes have no `.async`: koffi refuses to call them off-thread.
 */
export interface Declared<A extends unknown[]> {
  (...args: A): number
  async(args: A, done: (err: unknown, ret: number) => void): void
  /** False when this libc has no such symbol (a call would throw koffi's error, not an errno). */
  resolves(): boolean
}

/**
 * Declares a libc function lazily: the prototype is parsed and the symbol
 * resolved on first call, so a symbol missing from an old glibc only breaks
 * the feature that needs it, not the whole module. Exported for the other
 * native/ modules that keep their own declarations (ioctl.ts, quota.ts).
 */
export function declare<A extends unknown[]>(proto: string): Declared<A> {
  let fn: KoffiFn | undefined
  const get = (): KoffiFn => (fn ??= libc().func(proto))
  const call = ((...args: A): number => get()(...args) as number) as Declared<A>
  call.async = (args, done) => {
    get().async(...args, done)
  }
  call.resolves = () => {
    try {
      get()
      return true
    } catch {
      return false
    }
  }
  return call
}

// Pointer-to-struct parameters are declared `void *` and given a Buffer: koffi
// passes the Buffer's memory straight through, and we decode it ourselves
// (see stat.ts). Letting koffi decode `_Out_ struct *` would allocate a JS
// object on every call and returns 64-bit fields as number-or-bigint depending
// on magnitude, which is awkward for inode numbers.
//
// Strings are `const char *`: koffi copies a JS string into a NUL-terminated
// UTF-8 temporary for the duration of the call, and passes NULL for null.
export const fns = {
  mount: declare<[source: string | null, target: string, fstype: string | null, flags: number, data: string | null]>(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  ),
  umount2: declare<[target: string, flags: number]>('int umount2(const char *target, int flags)'),
  statx: declare<[dirfd: number, path: string, flags: number, mask: number, buf: Buffer]>(
    'int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)',
  ),
  statvfs: declare<[path: string, buf: Buffer]>('int statvfs(const char *path, void *buf)'),
  // open(2) is variadic in C (the mode only exists with O_CREAT/O_TMPFILE).
  // Declaring it with `...` makes koffi use the variadic calling convention
  // (on x86-64 that means setting %al), and we simply pass no extra argument,
  // exactly as C code calling open(path, O_PATH) does.
  open: declare<[path: string, flags: number]>('int open(const char *path, int flags, ...)'),
  close: declare<[fd: number]>('int close(int fd)'),
  openat: declare<[dirfd: number, path: string, flags: number]>('int openat(int dirfd, const char *path, int flags, ...)'),
  renameat: declare<[olddirfd: number, oldpath: string, newdirfd: number, newpath: string]>(
    'int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)',
  ),
  // Only used to learn a mount id on kernels whose statx() lacks STATX_MNT_ID.
  nameToHandleAt: declare<[dirfd: number, path: string, handle: Buffer, mountId: Int32Array, flags: number]>(
    'int name_to_handle_at(int dirfd, const char *path, void *handle, int *mount_id, int flags)',
  ),
}

/**
 * Calls a native function and converts a -1 return into an ErrnoError.
 * errno is read as the very first thing after the call returns: koffi does not
 * save it for synchronous calls, so anything that might run libc code in
 * between (including building the error message) could overwrite it.
 */
export function sys<A extends unknown[]>(
  fn: (...args: A) => number,
  args: A,
  syscall: string,
  path?: string,
  source?: string,
): number {
  const ret = fn(...args)
  if (ret === -1) {
    const errno = koffiMod!.errno()
    throw new ErrnoError(errno, syscall, path, source)
  }
  return ret
}

/**
 * sys() on a worker thread, for the calls that can keep the kernel busy for seconds (a mount that
 * replays a journal, LOOP_CONFIGURE flushing the backing file, FIFREEZE, fallocate of a large
 * image): while they run, the event loop keeps answering other RPCs, Probe included.
 *
 * errno: the call runs on a worker thread, whose errno is not this thread's. koffi saves the
 * worker's errno right after the call returns and puts it into this thread's errno only while
 * `done` runs (call.cc, AsyncCall::Complete), so it is read first thing in the callback, not
 * after the promise settles (a microtask later this thread's errno is its own again).
 *
 * The arguments (Buffers especially) stay referenced by the callback's closure until the call
 * is over, so the memory the kernel reads or writes cannot be collected meanwhile.
 */
export function sysAsync<A extends unknown[]>(
  fn: Declared<A>,
  args: A,
  syscall: string,
  path?: string,
  source?: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(args, (err, ret) => {
      const errno = koffiMod!.errno()
      if (err) reject(err instanceof Error ? err : new Error(String(err)))
      else if (ret === -1) reject(new ErrnoError(errno, syscall, path, source))
      else resolve(ret)
      void args
    })
  })
}

const EINVAL = 22

/**
 * C strings stop at the first NUL, so "/safe\0/../etc" would silently become
 * "/safe". Node's fs rejects such paths and so do we, with the errno the
 * kernel would use for an unrepresentable argument.
 */
export function checkPath(p: string, syscall: string): void {
  if (p.includes('\0')) throw new ErrnoError(EINVAL, syscall, JSON.stringify(p))
}

/**
 * Linux treats a trailing slash as "this must be a directory, follow it", even
 * under O_NOFOLLOW/AT_SYMLINK_NOFOLLOW, so "link/" would silently resolve a
 * symlink we promised not to follow. Strip them; "/" stays "/".
 */
export function noTrailingSlash(p: string): string {
  let end = p.length
  while (end > 1 && p.charCodeAt(end - 1) === 47 /* '/' */) end--
  return end === p.length ? p : p.slice(0, end)
}

export const AT_FDCWD = -100
export const AT_SYMLINK_NOFOLLOW = 0x100
export const AT_NO_AUTOMOUNT = 0x800
/**
 * statx: answer from the attributes the kernel has, without asking a network filesystem's server.
 * A mount point's type, device, inode and mount-root bit never change, and on a hard NFS mount
 * whose server died a synchronising statx would wait for ever, on the event loop.
 */
export const AT_STATX_DONT_SYNC = 0x4000
export const AT_EMPTY_PATH = 0x1000
