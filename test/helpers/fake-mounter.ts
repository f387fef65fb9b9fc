// An in-memory stand-in for the kernel's mount table, implementing the node service's Mounter
// seam. It exists because service tests must run without root: mount(2) needs CAP_SYS_ADMIN,
// so the real nativeMounter is covered by the root-only native-* tests and this fake covers
// everything the node service decides on top of it.
//
// What is real and what is pretended:
// - Directories are REAL (mkdir/rmdir/lstat in a t.testdir()), so symlinks, missing parents and
//   non-empty directories behave as on a real node.
// - "Mounts" are a Map target -> stack of layers. A mounted target's inspect() shows the
//   bound object's dev/ino with isMountRoot true, as statx(2) does for a bind mount's root.
// - statfs() returns fixed numbers; its flags are the ST_* bits of the top mount at the path.
// - bind() refuses a target whose object differs from expect.target (the native layer's
//   O_PATH re-check), a symlink or non-directory at either end, and a missing source;
//   rmdir() of a mounted directory fails with EBUSY; unmount() of a non-mount with EINVAL.
import { lstatSync, mkdirSync, rmdirSync, unlinkSync, writeFileSync, type BigIntStats } from 'node:fs'
import { aborted, failedPrecondition } from '../../common/errors.js'
import { ErrnoError, errnoNumber, fromNodeError, ST, type StatVfs } from '../../native/index.js'
import type { BindFlags } from '../../node/mountflags.js'
import type { Mounter, PathInfo } from '../../node/mounter.js'

export interface Layer {
  /** The object the mount shows (the bound directory, or what a bound mount showed). */
  source: PathInfo
  sourcePath: string
  /** ST_* bits, as statvfs would report them for this mount. */
  st: number
  flags: BindFlags
}

export interface FakeMounterOptions {
  /** Filesystem size in 4 KiB blocks (default: 10 GiB). */
  blocks?: bigint
  /** Free blocks for unprivileged users (default: all of them). */
  bavail?: bigint
  /** ST_* bits of paths that are not mounted by the fake (default: ST.RELATIME). */
  baseSt?: number
}

export type Op = 'bind' | 'unmount' | 'mkdir' | 'rmdir'

function errno(code: string, syscall: string, path: string): ErrnoError {
  const n = errnoNumber(code)
  if (n === undefined) throw new Error(`unknown errno ${code}`)
  return new ErrnoError(n, syscall, path)
}

/** Linux dev_t -> "major:minor", the notation statx and mountinfo use. */
function devString(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn)
  return `${major}:${minor}`
}

function typeOf(st: BigIntStats): PathInfo['type'] {
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isDirectory()) return 'dir'
  if (st.isFile()) return 'file'
  if (st.isBlockDevice()) return 'block'
  if (st.isCharacterDevice()) return 'char'
  if (st.isFIFO()) return 'fifo'
  if (st.isSocket()) return 'socket'
  return 'unknown'
}

export class FakeMounter implements Mounter {
  private readonly table = new Map<string, Layer[]>()
  /** Every effect requested, in order, for assertions about what was (not) done. */
  readonly calls: { op: Op; path: string; source?: string }[] = []
  private readonly failures = new Map<Op, string>()
  readonly blocks: bigint
  readonly bavail: bigint
  readonly baseSt: number

  constructor(o: FakeMounterOptions = {}) {
    this.blocks = o.blocks ?? (10n * 1024n ** 3n) / 4096n
    this.bavail = o.bavail ?? this.blocks
    this.baseSt = o.baseSt ?? ST.RELATIME
  }

  /** Makes the next call of `op` fail with errno `code` (once). */
  failNext(op: Op, code: string): void {
    this.failures.set(op, code)
  }

  /** How many mounts are stacked at target. */
  layers(target: string): number {
    return this.table.get(target)?.length ?? 0
  }

  top(target: string): Layer | undefined {
    const l = this.table.get(target)
    return l?.[l.length - 1]
  }

  mountedTargets(): string[] {
    return [...this.table.keys()].sort()
  }

  private injected(op: Op, path: string): void {
    const code = this.failures.get(op)
    if (code === undefined) return
    this.failures.delete(op)
    throw errno(code, op === 'unmount' ? 'umount2' : op === 'bind' ? 'mount' : op, path)
  }

  private lstat(path: string): PathInfo | undefined {
    let st
    try {
      st = lstatSync(path, { bigint: true })
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw fromNodeError(e, 'statx', path)
    }
    return { type: typeOf(st), dev: devString(st.dev), ino: st.ino, isMountRoot: false }
  }

  inspect(path: string): PathInfo | undefined {
    const layer = this.top(path)
    if (layer) return { ...layer.source, isMountRoot: true }
    return this.lstat(path)
  }

  bind(source: string, target: string, flags: BindFlags, expect: { target: PathInfo }): void {
    this.calls.push({ op: 'bind', path: target, source })
    this.injected('bind', target)
    const src = this.inspect(source)
    if (!src) throw errno('ENOENT', 'open', source)
    if (src.type === 'symlink') throw errno('ELOOP', 'open', source)
    if (src.type !== 'dir') throw errno('ENOTDIR', 'open', source)
    const dst = this.inspect(target)
    if (!dst) throw errno('ENOENT', 'open', target)
    if (dst.type === 'symlink') throw errno('ELOOP', 'open', target)
    if (dst.type !== 'dir') throw errno('ENOTDIR', 'open', target)
    if (dst.dev !== expect.target.dev || dst.ino !== expect.target.ino) {
      throw aborted(`${target} changed between the driver's checks and the mount; refusing, retry`)
    }
    // A new bind inherits the flags of the mount its source sits on, plus the requested ones.
    let st = this.top(source)?.st ?? this.baseSt
    if (flags.readonly) st |= ST.RDONLY
    if (flags.nosuid) st |= ST.NOSUID
    if (flags.nodev) st |= ST.NODEV
    if (flags.noexec) st |= ST.NOEXEC
    if (flags.noatime) st = (st | ST.NOATIME) & ~ST.RELATIME
    if (flags.nodiratime) st |= ST.NODIRATIME
    const stack = this.table.get(target) ?? []
    stack.push({ source: { ...src, isMountRoot: false }, sourcePath: source, st, flags: { ...flags } })
    this.table.set(target, stack)
  }

  async unmountFilesystem(target: string): Promise<void> {
    this.unmount(target)
  }

  unmount(target: string): void {
    this.calls.push({ op: 'unmount', path: target })
    this.injected('unmount', target)
    const stack = this.table.get(target)
    if (!stack || stack.length === 0) throw errno('EINVAL', 'umount2', target)
    stack.pop()
    if (stack.length === 0) this.table.delete(target)
  }

  statfs(path: string): StatVfs {
    if (!this.inspect(path)) throw errno('ENOENT', 'statvfs', path)
    const used = this.blocks - this.bavail
    return {
      blockSize: 4096,
      fragmentSize: 4096,
      blocks: this.blocks,
      bfree: this.blocks - used,
      bavail: this.bavail,
      files: 1_000_000n,
      ffree: 999_000n,
      favail: 999_000n,
      fsid: 42n,
      flags: this.top(path)?.st ?? this.baseSt,
      nameMax: 255,
    }
  }

  mkdir(path: string): void {
    this.calls.push({ op: 'mkdir', path })
    this.injected('mkdir', path)
    try {
      mkdirSync(path, { mode: 0o750 })
    } catch (e) {
      throw fromNodeError(e, 'mkdir', path)
    }
  }

  rmdir(path: string): void {
    this.calls.push({ op: 'rmdir', path })
    this.injected('rmdir', path)
    if (this.layers(path) > 0) throw errno('EBUSY', 'rmdir', path)
    try {
      rmdirSync(path)
    } catch (e) {
      throw fromNodeError(e, 'rmdir', path)
    }
  }

  // Image and block volumes need loop devices and real filesystems: they are tested as root
  // with the real kernel (test/process-image.test.ts), not through this stand-in.
  async mountImage(): Promise<string> {
    throw new Error('fake mounter: image volumes are tested with real loop devices')
  }

  // NFS needs a server and a kernel client: tested in the VM guest (test/vm/nfs*.vm.ts).
  async mountNfs(): Promise<void> {
    throw new Error('fake mounter: nfs volumes are tested against a real nfsd in the VM guest')
  }

  async attachImage(): Promise<string> {
    throw new Error('fake mounter: image volumes are tested with real loop devices')
  }

  async detachImage(): Promise<void> {}

  refreshLoopCapacity(): void {}

  createFile(path: string): void {
    writeFileSync(path, '', { flag: 'wx' })
  }

  removeFile(path: string): void {
    let st
    try {
      st = lstatSync(path)
    } catch {
      return
    }
    if (!st.isFile() || st.size !== 0) throw failedPrecondition(`${path} is not an empty file the driver made; not removing it`)
    unlinkSync(path)
  }
}
