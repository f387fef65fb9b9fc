// The copy engine behind snapshots, restores and clones: reflink where the
// filesystem can (xfs reflink=1, btrfs), else a sparse copy, keeping every
// piece of metadata a workload could notice.
//
// The source may be a live volume of an untrusted workload, so no name it
// controls is resolved twice: each directory is held open and its children
// are reached as /proc/self/fd/<dirfd>/<name> (Node has no openat), with
// O_NOFOLLOW / lstat / l*xattr on the last component; a directory swapped
// for a symlink mid-copy cannot lead the copy out of the volume. The
// destination is fresh and private, addressed by plain paths. Names and
// symlink targets are Buffers throughout, so non-UTF-8 names survive.

import { constants as C, promises as fsp, type BigIntStats } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { aborted, CsiError } from '../common/errors.js'
import { ErrnoError, fromNodeError, fstatx, isReflinkUnsupported, reflinkRangeAsync, seekData, seekHole } from '../native/index.js'
import { copyXattrs, mknod, setTimesNs } from '../native/index.js'

export interface CopyOptions {
  /** false: never try a reflink (always copy the data). Default: try. */
  reflink?: boolean
  /** Called as data is handled, with the cumulative byte count (holes and reflinked ranges included). */
  onProgress?: (bytes: number) => void
  /** Aborting rejects with signal.reason at the next chunk or entry. */
  signal?: AbortSignal
}

/** `bytes`: the file's size. */
export interface CopyFileResult {
  reflinked: boolean
  bytes: number
}

/**
 * files: non-directory entries created (regular files, extra hard-link
 * names, symlinks, fifos, devices); bytes: sum of regular file sizes, each
 * inode once; reflinked: regular files reflinked rather than copied;
 * skipped: relative paths of sockets, which are not copied (a socket file
 * means something only to its live listener).
 */
export interface CopyTreeResult {
  files: number
  bytes: number
  reflinked: number
  skipped: string[]
}

/**
 * CROSSES_MOUNT: a mount (another filesystem, or a bind mount) sits inside
 * the source; copying through it would put foreign data in a snapshot.
 * CHANGED: an entry was replaced between being listed and opened.
 */
export class CopyError extends Error {
  constructor(readonly code: 'CROSSES_MOUNT' | 'CHANGED', readonly path: string, message: string) {
    super(message)
    this.name = 'CopyError'
  }
}

export const CHUNK = 1 << 20
// Reflinks go in ranges this big (a multiple of any block size), each on a
// worker thread: an abort is noticed between ranges.
const REFLINK_RANGE = 256 * CHUNK
const ZERO = Buffer.alloc(CHUNK)
// O_NONBLOCK: if a regular file is swapped for a fifo after the lstat, open
// must not hang waiting for a writer; the fstat check then refuses it.
const SRC_FILE = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK
const SRC_DIR = SRC_FILE | C.O_DIRECTORY
const DST_FILE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW
const [EOPNOTSUPP, EXDEV] = [95, 18]

type Path = string | Buffer
export const join = (dir: Buffer, name: Buffer): Buffer => Buffer.concat([dir, Buffer.from('/'), name])
export const fmtOf = (st: BigIntStats): number => Number(st.mode) & C.S_IFMT

/** State shared by every file of one copyFile/copyTree call. */
class Job {
  bytes = 0
  /** tryReflink is cleared after EOPNOTSUPP/EXDEV, which hold for the whole filesystem pair. */
  constructor(readonly opts: CopyOptions, public tryReflink = opts.reflink !== false) {}
  report(n: number): void {
    this.opts.onProgress?.((this.bytes += n))
  }
  checkAbort = (): void => this.opts.signal?.throwIfAborted()
}

/**
 * Copies the regular file `src` (not a symlink: ELOOP) to `dst`, which must
 * not exist: created O_EXCL, mode 0600 until owner and mode are applied.
 * Reflinks unless opts.reflink === false or the filesystem (pair) cannot,
 * else copies sparsely; then owner, xattrs, mode and times. On failure, an
 * abort included, the partial `dst` is removed.
 */
export async function copyFile(src: string, dst: string, opts: CopyOptions = {}): Promise<CopyFileResult> {
  let created = false
  try {
    const r = await copyRegular(new Job(opts), src, dst, () => (created = true))
    await applyMeta(src, dst, r.st)
    return { reflinked: r.reflinked, bytes: Number(r.st.size) }
  } catch (e) {
    if (created) await fsp.rm(dst, { force: true }).catch(() => undefined)
    throw domainError(e, src)
  }
}

/**
 * Copies a volume's backing image file (copyFile). It freezes nothing: to
 * snapshot a mounted image, wrap it in withFrozenAsync on the volume's mount
 * point; the image lives on another filesystem, so the copy cannot block.
 */
export const copyImage: (src: string, dst: string, opts?: CopyOptions) => Promise<CopyFileResult> = copyFile

interface TreeCtx {
  job: Job
  srcRoot: string
  rootDev: bigint
  rootMnt: bigint
  /** dev:ino of a multiply-linked source inode -> its first copy. */
  links: Map<string, Buffer>
  result: CopyTreeResult
}

/**
 * Copies the directory tree `src` to `dst`, which must not exist (its parent
 * must). Keeps file types (regular, directory, symlink, fifo, char and block
 * devices; sockets are skipped and listed), permission bits with
 * setuid/setgid/sticky, owners, atime/mtime to the nanosecond, all xattrs
 * this process can read (all, as root; ACLs included), hard links within
 * the tree, sparse holes and empty files. Never follows a symlink; `src`
 * itself must not be one (ENOTDIR). A mount inside `src`: CopyError
 * CROSSES_MOUNT. Not kept: ctime/btime (unsettable), inode numbers, chattr
 * flags (immutable, nodatacow...), block allocation (zeroed blocks may turn
 * into holes). Not a point-in-time copy of a tree being written to. On an
 * error or abort, `dst` is left for the caller to remove; nothing is ever
 * written outside it.
 */
export async function copyTree(src: string, dst: string, opts: CopyOptions = {}): Promise<CopyTreeResult> {
  opts.signal?.throwIfAborted()
  const result: CopyTreeResult = { files: 0, bytes: 0, reflinked: 0, skipped: [] }
  let root: FileHandle | undefined
  try {
    root = await fsp.open(src, SRC_DIR)
    const st = await root.stat({ bigint: true })
    const ctx: TreeCtx = { job: new Job(opts), srcRoot: src, rootDev: st.dev, rootMnt: fstatx(root.fd).mntId, links: new Map(), result }
    const d = Buffer.from(dst)
    await fsp.mkdir(d, 0o700).catch((e: unknown) => Promise.reject(domainError(e, dst)))
    await copyDir(ctx, root, d, '')
    await applyMeta(src, d, st)
    return result
  } catch (e) {
    throw domainError(e, src)
  } finally {
    await root?.close()
  }
}

async function copyDir(ctx: TreeCtx, dir: FileHandle, dst: Buffer, rel: string): Promise<void> {
  const base = Buffer.from(`/proc/self/fd/${dir.fd}`)
  // Sorted: which name of a hard-linked inode is copied first (and which
  // error is met first) should not depend on directory order.
  for (const name of (await fsp.readdir(base, { encoding: 'buffer' })).sort(Buffer.compare)) {
    ctx.job.checkAbort()
    const r = rel === '' ? name.toString() : `${rel}/${name.toString()}`
    await copyEntry(ctx, join(base, name), join(dst, name), r).catch((e: unknown) => Promise.reject(domainError(e, `${ctx.srcRoot}/${r}`)))
  }
}

/**
 * A live volume changes while it is copied (databases rename files into place): an entry that
 * vanished between readdir and lstat is simply not in the copy, and one that changed type or
 * identity between lstat and open is copied again as it is now. An entry that keeps changing
 * through every attempt makes the copy ABORTED, which the CO retries.
 */
const ATTEMPTS = 8
async function copyEntry(ctx: TreeCtx, s: Buffer, d: Buffer, rel: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await copyEntryOnce(ctx, s, d, rel)
    } catch (e) {
      const code = (e as { code?: unknown }).code
      if (code === 'ENOENT' && !(await exists(s))) return
      if (!CHANGED_UNDERFOOT.has(String(code))) throw e
      // What the failed attempt made is inside our own destination tree.
      await fsp.rm(d, { recursive: true, force: true })
      // Still changing after all the attempts: the workload is rewriting this entry as fast as
      // it can be copied. Worth another try later (the CO retries CreateSnapshot), not a failure.
      if (attempt >= ATTEMPTS) throw aborted(`${ctx.srcRoot}/${rel} kept changing while it was copied (${String(code)}); retry`)
      await yieldToLoop()
    }
  }
}

// What opening, reading a link or reading a file answers when the entry was swapped meanwhile:
// gone, a symlink where O_NOFOLLOW met it, a non-directory where O_DIRECTORY met it, not a link
// any more for readlink, or a different object than was lstat'ed (CopyError CHANGED).
const CHANGED_UNDERFOOT = new Set(['ENOENT', 'ELOOP', 'ENOTDIR', 'EINVAL', 'CHANGED'])

async function exists(p: Buffer): Promise<boolean> {
  return fsp.lstat(p).then(() => true, () => false)
}

async function copyEntryOnce(ctx: TreeCtx, s: Buffer, d: Buffer, rel: string): Promise<void> {
  const st = await fsp.lstat(s, { bigint: true })
  if (st.dev !== ctx.rootDev) throw crossesMount(ctx, rel)
  const fmt = fmtOf(st)
  const key = fmt !== C.S_IFDIR && st.nlink > 1n ? `${st.dev}:${st.ino}` : ''
  const first = ctx.links.get(key)
  if (first !== undefined) {
    await fsp.link(first, d)
    ctx.result.files++
    return
  }
  let meta = st
  if (fmt === C.S_IFDIR) {
    const fh = await fsp.open(s, SRC_DIR)
    try {
      await checkOpened(ctx, fh, st, rel)
      await fsp.mkdir(d, 0o700)
      await copyDir(ctx, fh, d, rel)
    } finally {
      await fh.close()
    }
  } else if (fmt === C.S_IFREG) {
    const r = await copyRegular(ctx.job, s, d, undefined, (fh) => checkOpened(ctx, fh, st, rel))
    meta = r.st
    ctx.result.bytes += Number(r.st.size)
    if (r.reflinked) ctx.result.reflinked++
  } else if (fmt === C.S_IFLNK) {
    await fsp.symlink(await fsp.readlink(s, { encoding: 'buffer' }), d)
  } else if (fmt === C.S_IFIFO || fmt === C.S_IFCHR || fmt === C.S_IFBLK) {
    mknod(d, fmt | 0o600, st.rdev)
  } else {
    ctx.result.skipped.push(rel)
    return
  }
  if (fmt !== C.S_IFDIR) ctx.result.files++
  await applyMeta(s, d, meta)
  if (key !== '') ctx.links.set(key, d)
}

const crossesMount = (ctx: TreeCtx, rel: string, p = `${ctx.srcRoot}/${rel}`): CopyError =>
  new CopyError('CROSSES_MOUNT', p, `copy: ${p} is on another mount than ${ctx.srcRoot}; refusing to copy across it`)

// The object opened must be the one lstat'ed, and on the source's mount: a
// bind mount from the same filesystem shares st_dev, not the mount id.
async function checkOpened(ctx: TreeCtx, fh: FileHandle, st: BigIntStats, rel: string): Promise<void> {
  const now = await fh.stat({ bigint: true })
  const p = `${ctx.srcRoot}/${rel}`
  if (now.ino !== st.ino || now.dev !== st.dev || fmtOf(now) !== fmtOf(st)) throw new CopyError('CHANGED', p, `copy: ${p} was replaced meanwhile`)
  const x = fstatx(fh.fd)
  if (x.isMountRoot || (ctx.rootMnt !== 0n && x.mntId !== 0n && x.mntId !== ctx.rootMnt)) throw crossesMount(ctx, rel)
}

/**
 * Opens `src` (no symlinks), creates `dst` (O_EXCL, 0600), fills it. Returns
 * the fstat of the source copied, from before reading: the pre-copy atime.
 */
async function copyRegular(
  job: Job, src: Path, dst: Path, onCreate?: () => void, check?: (fh: FileHandle) => Promise<void>,
): Promise<{ reflinked: boolean; st: BigIntStats }> {
  const sfh = await openSource(src)
  let dfh: FileHandle | undefined
  try {
    if (check !== undefined) await check(sfh)
    const st = await sfh.stat({ bigint: true })
    if (!st.isFile()) throw new ErrnoError(22 /* EINVAL */, 'copy', String(src))
    dfh = await fsp.open(dst, DST_FILE, 0o600)
    onCreate?.()
    const size = Number(st.size)
    const reflinked = job.tryReflink && size > 0 && (await reflinkAll(job, sfh, dfh, size))
    if (!reflinked) await sparseCopy(job, sfh, dfh, size)
    return { reflinked, st }
  } finally {
    await dfh?.close()
    await sfh.close()
  }
}

/**
 * FICLONERANGE over the whole file, range by range; the last range has
 * length 0 ("to EOF"), which covers a size that is not block-aligned, and
 * when it is the only one this is exactly FICLONE. False if the filesystem
 * cannot reflink this pair, which can only show on the first range.
 */
async function reflinkAll(job: Job, sfh: FileHandle, dfh: FileHandle, size: number): Promise<boolean> {
  for (let off = 0; off < size; off += REFLINK_RANGE) {
    job.checkAbort()
    const last = off + REFLINK_RANGE >= size
    try {
      await reflinkRangeAsync(sfh.fd, dfh.fd, off, last ? 0 : REFLINK_RANGE, off)
    } catch (e) {
      if (off > 0 || !isReflinkUnsupported(e)) throw e
      // EINVAL can be specific to one file (btrfs nodatacow vs cow).
      if (e.errno === EOPNOTSUPP || e.errno === EXDEV) job.tryReflink = false
      return false
    }
    job.report(last ? size - off : REFLINK_RANGE)
  }
  return true
}

export async function openSource(p: Path): Promise<FileHandle> {
  // O_NOATIME: a snapshot should not change the source's atimes. Allowed only
  // to the owner or CAP_FOWNER, hence the retry without it.
  try {
    return await fsp.open(p, SRC_FILE | C.O_NOATIME)
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EPERM') throw e
    return fsp.open(p, SRC_FILE)
  }
}

/**
 * Copies only the data extents (SEEK_DATA/SEEK_HOLE) in 1 MiB chunks through
 * the thread pool, then ftruncates to the exact size: holes, a trailing one
 * too, stay holes. All-zero chunks are not written either (they read back
 * the same as holes). Stops at the size seen at open, for a growing file.
 */
async function sparseCopy(job: Job, sfh: FileHandle, dfh: FileHandle, size: number): Promise<void> {
  const buf = Buffer.allocUnsafe(CHUNK)
  let done = 0 // progress counts holes as done once passed, so it adds up to the size
  const advance = (to: number): void => {
    if (to > done) job.report(to - done)
    done = Math.max(done, to)
  }
  for (let off = 0; off < size; ) {
    const data = seekData(sfh.fd, off)
    if (data === null || data >= size) break
    const end = Math.min(seekHole(sfh.fd, data) ?? size, size)
    for (let pos = data; pos < end; ) {
      job.checkAbort()
      const { bytesRead: n } = await sfh.read(buf, 0, Math.min(CHUNK, end - pos), pos)
      if (n === 0) break // truncated under us
      if (buf.compare(ZERO, 0, n, 0, n) !== 0) {
        for (let w = 0; w < n; ) w += (await dfh.write(buf, w, n - w, pos + w)).bytesWritten
      }
      pos += n
      advance(pos)
    }
    off = end
  }
  job.checkAbort()
  await dfh.truncate(size)
  advance(size)
}

/**
 * Owner, xattrs, mode, times: the only order that keeps them all. chown
 * clears setuid/setgid and security.capability; an ACL xattr rewrites the
 * mode; all of them change ctime only, so times go last. Directories get
 * this after their content, which would bump their mtime.
 */
async function applyMeta(src: Path, dst: Path, st: BigIntStats): Promise<void> {
  await fsp.lchown(dst, Number(st.uid), Number(st.gid))
  copyXattrs(src, dst)
  // There is no lchmod on Linux: a symlink's own mode is always 0777.
  if (!st.isSymbolicLink()) await fsp.chmod(dst, Number(st.mode) & 0o7777)
  setTimesNs(dst, st.atimeNs, st.mtimeNs)
}

const located = new WeakSet<object>()

/**
 * Node fs errors become ErrnoError (the driver's one syscall-error shape),
 * named after the source entry being copied rather than an internal
 * /proc/self/fd path; the innermost entry names it. CopyError, abort
 * reasons and bugs pass through unchanged.
 */
function domainError(e: unknown, path: string): unknown {
  if (e instanceof CopyError || e instanceof CsiError || (e instanceof Object && located.has(e))) return e
  try {
    const err = e instanceof ErrnoError ? e : fromNodeError(e, (e as { syscall?: string }).syscall ?? 'copy', path)
    const out = Object.assign(new ErrnoError(err.errno, err.syscall, path), { cause: e })
    located.add(out)
    return out
  } catch {
    return e
  }
}
