// Reflinks and freezing through native/fsioc.ts: pure encodings everywhere,
// and, as root, real xfs/btrfs/ext4/tmpfs filesystems on loop devices.
//
// Leak guard: teardown (registered before t.testdir()) thaws, unmounts and
// detaches everything the test set up inside its directory, even when an
// assertion failed halfway, before tap deletes the directory.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import {
  ErrnoError,
  MNT,
  freeze,
  fromNodeError,
  isReflinkUnsupported,
  listLoopDevices,
  loopAttach,
  loopDetach,
  mount,
  parseBackingFile,
  reflinkFile,
  reflinkRange,
  statvfs,
  statx,
  thaw,
  umount2,
  withFrozen,
  withFrozenAsync,
} from '../native/index.js'
import { checkFsiocLayouts, encodeFileCloneRange } from '../native/fsioc.js'
import { ioc } from '../native/ioctl.js'
import { loopRig, unmountQuietly } from './helpers/loopfs.js'

const MiB = 1024 * 1024
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0

const rootSkip =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (CAP_SYS_ADMIN for loop devices, mount and FIFREEZE); run as root to exercise it'
      : !existsSync('/dev/loop-control')
        ? 'no /dev/loop-control on this machine'
        : false
const needs = (...fss: string[]): string | false =>
  rootSkip || fss.map((f) => !hasMkfs(f) && `mkfs.${f} missing (apt-get install ${f === 'ext4' ? 'e2fsprogs' : f + 'progs'})`).find(Boolean) || false

t.test('pure: ioctl numbers and struct file_clone_range', async (t) => {
  // Values printed by a C program including <linux/fs.h> on x86-64.
  t.equal(ioc('w', 0x94, 9, 4), 0x40049409, 'FICLONE')
  t.equal(ioc('w', 0x94, 13, 32), 0x4020940d, 'FICLONERANGE')
  t.equal(ioc('rw', 0x58, 119, 4), 0xc0045877, 'FIFREEZE')
  t.equal(ioc('rw', 0x58, 120, 4), 0xc0045878, 'FITHAW')
  const b = encodeFileCloneRange(7, 4096n, 65536n, 8192n)
  t.equal(b.length, 32)
  t.equal(b.readBigInt64LE(0), 7n, 'src_fd')
  t.equal(b.readBigUInt64LE(8), 4096n, 'src_offset')
  t.equal(b.readBigUInt64LE(16), 65536n, 'src_length')
  t.equal(b.readBigUInt64LE(24), 8192n, 'dest_offset')
  t.doesNotThrow(() => checkFsiocLayouts(), 'layout agrees with koffi')
})

t.test('pure: which errors mean "copy instead"', async (t) => {
  t.ok(isReflinkUnsupported(new ErrnoError(95, 'ioctl FICLONE')), 'EOPNOTSUPP')
  t.ok(isReflinkUnsupported(new ErrnoError(18, 'ioctl FICLONE')), 'EXDEV')
  t.ok(isReflinkUnsupported(new ErrnoError(22, 'ioctl FICLONE')), 'EINVAL')
  t.notOk(isReflinkUnsupported(new ErrnoError(28, 'ioctl FICLONE')), 'ENOSPC is a real error')
  t.notOk(isReflinkUnsupported(new ErrnoError(5, 'ioctl FICLONE')), 'EIO is a real error')
  t.notOk(isReflinkUnsupported(new Error('x')), 'not an ErrnoError')
})

interface Env {
  dir: string
  /** Loop-mounted fresh filesystem; returns its mount point. */
  makeFs: (name: string, fs: 'ext4' | 'xfs' | 'btrfs', size: number) => string
  /** A tmpfs mount; returns its mount point. */
  tmpfs: (name: string) => string
  /** Registers a mount made by the test itself for teardown. */
  track: (mountPoint: string) => void
}

function setup(t: Test): Env {
  const mounts: string[] = []
  let dir = ''
  t.teardown(() => {
    for (const m of mounts.reverse()) {
      try {
        thaw(m) // in case a test died while it was frozen
      } catch {
        /* not frozen */
      }
      unmountQuietly(m)
    }
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
  dir = realpathSync(t.testdir({}))
  const MKFS = { ext4: ['-q', '-F'], xfs: ['-q', '-f', '-m', 'reflink=1'], btrfs: ['-q', '-f'] }
  return {
    dir,
    track: (m) => mounts.push(m),
    makeFs: (name, fs, size) => {
      const img = join(dir, `${name}.img`)
      writeFileSync(img, '')
      truncateSync(img, size)
      const mnt = join(dir, name)
      mkdirSync(mnt)
      mounts.push(mnt)
      loopAttach(img, {
        directIo: true,
        // Attach, mkfs and mount while our fd holds the device; autoclear
        // then ties the device's life to the mount.
        autoclear: true,
        whileOpen: (a) => {
          const r = spawnSync(`mkfs.${fs}`, [...MKFS[fs], a.device], { encoding: 'utf8' })
          if (r.status !== 0) throw new Error(`mkfs.${fs}: ${r.stderr}`)
          mount(a.device, mnt, fs, 0, null)
        },
      })
      return mnt
    },
    tmpfs: (name) => {
      const mnt = join(dir, name)
      mkdirSync(mnt)
      mounts.push(mnt)
      mount('tmpfs', mnt, 'tmpfs', 0, 'size=16m')
      return mnt
    },
  }
}


function errOf(fn: () => unknown): ErrnoError | undefined {
  try {
    fn()
  } catch (e) {
    return fromNodeError(e, 'test')
  }
  return undefined
}

function writeSynced(p: string, data: Buffer): void {
  writeFileSync(p, data, { mode: 0o640 })
  const fd = openSync(p, 'r')
  fsyncSync(fd)
  closeSync(fd)
}

for (const [fs, size] of [
  ['xfs', 512 * MiB],
  ['btrfs', 256 * MiB],
] as const) {
  t.test(`reflink on ${fs}`, { skip: needs(fs) }, async (t) => {
    const env = setup(t)
    const mnt = env.makeFs(fs, fs, size)
    const src = join(mnt, 'src.bin')
    const data = randomBytes(8 * MiB)
    writeSynced(src, data)
    spawnSync('sync', ['-f', mnt])

    const before = statvfs(mnt)
    const dst = join(mnt, 'clone.bin')
    reflinkFile(src, dst)
    spawnSync('sync', ['-f', mnt])
    const after = statvfs(mnt)
    t.ok(readFileSync(dst).equals(data), 'clone has the same content')
    t.equal(statSync(dst).mode & 0o7777, 0o640, 'and the source permission bits')
    const usedBytes = Number(before.bfree - after.bfree) * before.fragmentSize
    t.ok(usedBytes < MiB, `cloning 8 MiB used ${(usedBytes / 1024).toFixed(0)} KiB`)

    // Copy-on-write: writing the clone leaves the source alone.
    const fd = openSync(dst, 'r+')
    const patch = Buffer.alloc(4096, 0xee)
    try {
      writeSync(fd, patch, 0, patch.length, MiB)
    } finally {
      closeSync(fd)
    }
    t.ok(readFileSync(src).equals(data), 'source unchanged after writing the clone')
    t.ok(readFileSync(dst).subarray(MiB, MiB + 4096).equals(patch), 'clone changed')

    // FICLONERANGE: the second 64 KiB of src to offset 0 of a new file.
    const part = join(mnt, 'part.bin')
    const sfd = openSync(src, 'r')
    const dfd = openSync(part, 'w')
    try {
      reflinkRange(sfd, dfd, 65536, 65536, 0)
      t.equal(errOf(() => reflinkRange(sfd, dfd, 100, 4096, 0))?.code, 'EINVAL', 'unaligned range: EINVAL')
    } finally {
      closeSync(sfd)
      closeSync(dfd)
    }
    t.ok(readFileSync(part).equals(data.subarray(65536, 131072)), 'range clone content')

    t.equal(errOf(() => reflinkFile(src, dst))?.code, 'EEXIST', 'existing destination: EEXIST')
    t.ok(readFileSync(dst).subarray(MiB, MiB + 4096).equals(patch), 'and it was left alone')
    symlinkSync(src, join(mnt, 'link'))
    t.equal(errOf(() => reflinkFile(join(mnt, 'link'), join(mnt, 'x')))?.code, 'ELOOP', 'symlinked source: ELOOP')
    t.notOk(existsSync(join(mnt, 'x')), 'no destination left behind')
    t.equal(errOf(() => reflinkFile(mnt, join(mnt, 'y')))?.code, 'EISDIR', 'directory source: EISDIR')
  })
}

t.test('reflink is refused on ext4, tmpfs and across filesystems', { skip: needs('ext4', 'xfs') }, async (t) => {
  const env = setup(t)
  const ext4 = env.makeFs('ext4', 'ext4', 64 * MiB)
  const tmp = env.tmpfs('tmp')
  const xfs = env.makeFs('xfs', 'xfs', 512 * MiB)
  for (const [what, srcDir, dstDir] of [
    ['ext4', ext4, ext4],
    ['tmpfs', tmp, tmp],
    ['xfs -> ext4', xfs, ext4],
  ] as const) {
    const src = join(srcDir, `src-${what.replace(/\W/g, '')}`)
    const dst = join(dstDir, `dst-${what.replace(/\W/g, '')}`)
    writeFileSync(src, randomBytes(65536))
    const e = errOf(() => reflinkFile(src, dst))
    t.ok(e !== undefined && isReflinkUnsupported(e), `${what}: unsupported (${e?.code})`)
    t.notOk(existsSync(dst), `${what}: destination removed again`)
  }
})

t.test('freeze and thaw an ext4 loop mount', { skip: needs('ext4') }, async (t) => {
  const env = setup(t)
  const mnt = env.makeFs('vol', 'ext4', 64 * MiB)
  writeFileSync(join(mnt, 'before'), 'x')

  freeze(mnt)
  t.equal(errOf(() => freeze(mnt))?.code, 'EBUSY', 'freezing twice: EBUSY')
  // A write from another process blocks until the thaw.
  const child = spawn('sh', ['-c', `echo hi > '${join(mnt, 'during')}'`], { stdio: 'ignore' })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  await new Promise((r) => setTimeout(r, 400))
  t.equal(child.exitCode, null, 'writer is blocked while frozen')
  thaw(mnt)
  t.equal(await exited, 0, 'writer completes after thaw')
  t.equal(readFileSync(join(mnt, 'during'), 'utf8'), 'hi\n')
  t.equal(errOf(() => thaw(mnt))?.code, 'EINVAL', 'thawing a thawed fs: EINVAL')

  mkdirSync(join(mnt, 'sub'))
  t.equal(errOf(() => freeze(join(mnt, 'sub')))?.code, 'EINVAL', 'a directory that is not a mount root is refused')
  t.equal(errOf(() => freeze(join(env.dir, 'nope')))?.code, 'ENOENT')

  t.throws(() => withFrozen(mnt, () => {
    t.equal(errOf(() => freeze(mnt))?.code, 'EBUSY', 'frozen inside withFrozen')
    throw new Error('boom')
  }), /boom/)
  // Still frozen, a second freeze would answer EBUSY (and a write would hang, not fail): so ask
  // the kernel with a freeze of our own, and undo it.
  t.equal(errOf(() => freeze(mnt))?.code, undefined, 'withFrozen thawed after fn threw: a new freeze is accepted')
  thaw(mnt)
  writeFileSync(join(mnt, 'after-throw'), 'x')
  t.equal(withFrozen(mnt, () => 42), 42)
  t.equal(await withFrozenAsync(mnt, async () => {
    await new Promise((r) => setTimeout(r, 20))
    return 'ok'
  }), 'ok')
  t.equal(errOf(() => freeze(mnt))?.code, undefined, 'withFrozenAsync thawed: a new freeze is accepted')
  thaw(mnt)
  writeFileSync(join(mnt, 'after-async'), 'x')
})

t.test('crash-consistent image snapshot: freeze the fs, reflink its backing file', { skip: needs('ext4', 'xfs') }, async (t) => {
  const env = setup(t)
  const host = env.makeFs('host', 'xfs', 512 * MiB)
  // An image volume whose backing file lives on the reflink-capable host fs.
  const img = join(host, 'vol.img')
  writeFileSync(img, '')
  truncateSync(img, 64 * MiB)
  const mnt = join(env.dir, 'vol')
  mkdirSync(mnt)
  env.track(mnt)
  const a = loopAttach(img, {
    autoclear: true,
    whileOpen: (att) => {
      spawnSync('mkfs.ext4', ['-q', '-F', att.device])
      mount(att.device, mnt, 'ext4', 0, null)
    },
  })
  writeFileSync(join(mnt, 'data'), 'snapshot me')
  const t0 = performance.now()
  withFrozen(mnt, () => reflinkFile(img, join(host, 'snap.img')))
  t.comment(`freeze + reflink 64 MiB image + thaw: ${(performance.now() - t0).toFixed(1)} ms (loop dio: ${a.directIo})`)
  writeFileSync(join(mnt, 'data'), 'changed after')

  const snapMnt = join(env.dir, 'snap')
  mkdirSync(snapMnt)
  env.track(snapMnt)
  loopAttach(join(host, 'snap.img'), {
    readOnly: true,
    autoclear: true,
    whileOpen: (att) => mount(att.device, snapMnt, 'ext4', 1 /* MS_RDONLY */, 'noload'),
  })
  t.equal(readFileSync(join(snapMnt, 'data'), 'utf8'), 'snapshot me', 'snapshot holds the data as of the freeze')
})
