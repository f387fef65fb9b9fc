// Root-only: exercises real mount(2)/umount2(2) inside a tap testdir.
// Every mount is recorded before assertions run and removed in teardown, so a
// failing assertion cannot leave a bind mount behind on the host.
import t, { type Test } from 'tap'
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ErrnoError,
  MNT,
  MOUNT_ATTR,
  MS,
  ST,
  close,
  fdPath,
  fromNodeError,
  openDir,
  openPath,
  mount,
  mountSetattr,
  moveMount,
  openTree,
  readMountInfo,
  settleRenames,
  fstatx,
  statvfs,
  statx,
  umount2,
  type Statx,
} from '../native/index.js'
import { declare } from '../native/libc.js'
import { completeFromParent } from '../native/stat.js'
import { flaggedBind } from '../node/flagged-bind.js'
import { landedAt, nativeMounter } from '../node/mounter.js'
import { parseBindFlags } from '../node/mountflags.js'

const skip =
  process.platform !== 'linux'
    ? 'mount(2) tests need Linux'
    : process.getuid?.() !== 0
      ? 'mount(2) tests need root (CAP_SYS_ADMIN); run as root to exercise them'
      : false

type T = Test

/** testdir whose mounts are always undone, innermost first, in teardown. */
function setup(t: T, content: Parameters<T['testdir']>[0]): { dir: string; track: (p: string) => void } {
  const mounted: string[] = []
  // Order matters: t.teardown() and t.testdir() each wrap the test's
  // end-of-test hook, and whichever is installed first runs first. Teardown
  // first means unmount, then delete; the other way round a failing test
  // would rimraf through the live bind mount (deleting the source) and leak it.
  t.teardown(() => {
    for (const p of mounted.reverse()) {
      // Loop: the same path may have been mounted on more than once.
      for (let i = 0; i < 8; i++) {
        try {
          if (!statx(p).isMountRoot) break
          umount2(p, MNT.DETACH | MNT.UMOUNT_NOFOLLOW)
        } catch {
          break
        }
      }
    }
  })
  // realpath: mountinfo reports resolved paths, and tests compare with it.
  const dir = realpathSync(t.testdir(content))
  return { dir, track: (p) => mounted.push(p) }
}

/** Recomputes mntId/isMountRoot the way pre-5.8 kernels force us to. */
function viaFallback(path: string): Statx {
  const st = { ...statx(path), mntId: 0n, isMountRoot: false }
  completeFromParent(st, path)
  return st
}

t.test('bind mount, read-only remount, unmount', { skip }, async (t) => {
  const { dir, track } = setup(t, { A: { 'seed.txt': 'seed' }, B: {}, fA: 'file A', fB: '' })
  const A = join(dir, 'A')
  const B = join(dir, 'B')

  track(B)
  mount(A, B, null, MS.BIND, null)

  writeFileSync(join(B, 'via-b.txt'), 'hello')
  t.equal(readFileSync(join(A, 'via-b.txt'), 'utf8'), 'hello', 'write through B lands in A')
  t.equal(readFileSync(join(B, 'seed.txt'), 'utf8'), 'seed')

  const sa = statx(A)
  const sb = statx(B)
  t.equal(sb.isMountRoot, true, 'B is a mount root')
  t.equal(sa.isMountRoot, false, 'A is not')
  t.equal(sb.ino, sa.ino, 'bind mount root shares the source inode')
  t.equal(sb.dev, sa.dev, 'and its device')
  t.not(sb.mntId, sa.mntId, 'but is a different mount')

  // statx's mount id is the one /proc/self/mountinfo uses.
  const mi = readMountInfo().find((m) => m.mountId === Number(sb.mntId))
  t.ok(mi, 'mount id found in mountinfo')
  t.equal(mi?.mountPoint, B)
  t.equal(mi?.dev, sb.dev)
  t.ok(mi?.root.endsWith('/A'), `bind root is the source subtree (${mi?.root})`)

  // The fallback used on kernels without STATX_ATTR_MOUNT_ROOT agrees.
  t.equal(viaFallback(B).isMountRoot, true, 'fallback: B')
  t.equal(viaFallback(A).isMountRoot, false, 'fallback: A')
  t.equal(viaFallback(B).mntId, sb.mntId, 'fallback mount id via name_to_handle_at')
  t.equal(viaFallback('/').isMountRoot, true, 'fallback: /')

  // A bind mount ignores MS_RDONLY on creation; it takes a remount.
  mount(null, B, null, MS.BIND | MS.REMOUNT | MS.RDONLY, null)
  t.ok(statvfs(B).flags & ST.RDONLY, 'B is read-only')
  t.notOk(statvfs(A).flags & ST.RDONLY, 'A is still writable')
  let werr: unknown
  try {
    writeFileSync(join(B, 'nope.txt'), 'x')
  } catch (e) {
    werr = e
  }
  const e = fromNodeError(werr, 'open')
  t.equal(e.code, 'EROFS')
  t.equal(e.errno, 30)
  writeFileSync(join(A, 'still-ok.txt'), 'x')

  umount2(B, MNT.UMOUNT_NOFOLLOW)
  t.equal(statx(B).isMountRoot, false, 'unmounted')
  t.same(readdirSync(B), [], 'B is empty again')
  t.ok(existsSync(join(A, 'via-b.txt')), 'data stayed in A')

  // File bind mounts: the parent-comparison fallback must use dirname.
  const fA = join(dir, 'fA')
  const fB = join(dir, 'fB')
  track(fB)
  mount(fA, fB, null, MS.BIND, null)
  t.equal(readFileSync(fB, 'utf8'), 'file A')
  t.equal(statx(fB).isMountRoot, true, 'file bind mount is a mount root')
  t.equal(viaFallback(fB).isMountRoot, true, 'fallback: file bind mount')
  t.equal(viaFallback(fA).isMountRoot, false, 'fallback: plain file')
  umount2(fB, MNT.UMOUNT_NOFOLLOW)
  t.equal(statx(fB).isMountRoot, false)
})

t.test('mount onto an fd path defeats a later symlink swap', { skip }, async (t) => {
  const { dir, track } = setup(t, { A: { 'a.txt': 'a' }, B: {}, decoy: {} })
  const A = join(dir, 'A')
  const B = join(dir, 'B')
  const B2 = join(dir, 'B2')

  track(B)
  const fd = openDir(B)
  t.teardown(() => {
    try {
      close(fd)
    } catch {}
  })
  mount(A, fdPath(fd), null, MS.BIND, null)
  t.equal(statx(B).isMountRoot, true)
  t.equal(readFileSync(join(B, 'a.txt'), 'utf8'), 'a')
  umount2(B, MNT.UMOUNT_NOFOLLOW)

  // Open, then swap the path for a symlink before mounting: the mount still
  // lands on the object that was opened (now at B2), not on the decoy.
  track(B2)
  track(join(dir, 'decoy'))
  const fd2 = openDir(B)
  renameSync(B, B2)
  symlinkSync(join(dir, 'decoy'), B)
  try {
    mount(A, fdPath(fd2), null, MS.BIND, null)
  } finally {
    close(fd2)
  }
  t.equal(statx(B2).isMountRoot, true, 'mounted on the opened directory')
  t.equal(statx(join(dir, 'decoy')).isMountRoot, false, 'not on the symlink target')
  t.equal(statx(B).type, 'symlink')
  umount2(B2, MNT.UMOUNT_NOFOLLOW)
  // UMOUNT_NOFOLLOW refuses to resolve the planted symlink.
  t.throws(() => umount2(B, MNT.UMOUNT_NOFOLLOW), { code: 'EINVAL' })
})

t.test('error reporting', { skip }, async (t) => {
  const { dir, track } = setup(t, { A: {}, B: {}, target: {} })
  const B = join(dir, 'B')
  mkdirSync(join(dir, 'C'))
  symlinkSync(join(dir, 'A'), join(dir, 'link'))

  t.throws(() => openPath(join(dir, 'link')), { name: 'ErrnoError', code: 'ELOOP', errno: 40, syscall: 'open' })

  t.throws(() => umount2(B, 0), { name: 'ErrnoError', code: 'EINVAL', errno: 22, syscall: 'umount2', path: B }, 'not a mount')

  const missing = join(dir, 'no-such-source')
  track(B)
  let err: unknown
  try {
    mount(missing, B, null, MS.BIND, null)
  } catch (e) {
    err = e
  }
  t.ok(err instanceof ErrnoError)
  t.match(err, { code: 'ENOENT', errno: 2, syscall: 'mount', path: B, source: missing })
  t.equal((err as Error).message, `mount(${missing} -> ${B}): ENOENT (No such file or directory)`)
  t.equal(statx(B).isMountRoot, false, 'nothing was mounted')

  t.throws(() => mount(null, `${B}\0/x`, 'tmpfs', 0, null), { code: 'EINVAL' }, 'NUL in a path never reaches the kernel')
  t.throws(() => mount('none', join(dir, 'target'), 'no-such-fs-type', 0, null), { code: 'ENODEV', syscall: 'mount' })
  t.throws(() => mount(null, B, null, -1, null), RangeError)
})

t.test('settleRenames locks and unlocks the parent and changes nothing', { skip }, async (t) => {
  const { dir } = setup(t, { d: {}, f: 'x' })
  for (const name of ['d', 'f']) {
    const fd = openPath(join(dir, name))
    try {
      settleRenames(fd)
    } finally {
      close(fd)
    }
  }
  t.same(readdirSync(dir).sort(), ['d', 'f'], 'no entry was created, renamed or removed')
})

t.test('landedAt: a mount that followed its directory away from the path is taken down and ABORTED', { skip }, async (t) => {
  const { dir, track } = setup(t, { src: { 'a.txt': 'a' }, target: {}, elsewhere: {} })
  const target = join(dir, 'target')
  const moved = join(dir, 'moved')
  track(target)
  track(moved)
  // The order the race suite hits by chance: the directory is opened, then moved away and a
  // symlink put in its place, then mount(2) runs on the opened object.
  const mounter = nativeMounter({ scratchDir: join(dir, 'scratch') })
  const seen = mounter.inspect(target)!
  const src = statx(join(dir, 'src'))
  const dst = openDir(target)
  t.teardown(() => close(dst))
  renameSync(target, moved)
  symlinkSync(join(dir, 'elsewhere'), target)
  mount(join(dir, 'src'), fdPath(dst), null, MS.BIND, null)
  t.ok(statx(moved).isMountRoot, 'the bind landed on the moved directory')
  t.throws(() => landedAt(dst, target, seen, (now) => now.ino === src.ino), { code: 10 }, 'ABORTED')
  t.notOk(statx(moved).isMountRoot, 'the misplaced bind was taken down through the fd')
  t.notOk(readMountInfo().some((m) => m.mountPoint.startsWith(dir + '/')), 'no mount is left under the test folder')

  // And the good case: the path shows the mount, and the fd of its root comes back.
  rmSync(target)
  renameSync(moved, target)
  const seen2 = mounter.inspect(target)!
  const dst2 = openDir(target)
  t.teardown(() => close(dst2))
  mount(join(dir, 'src'), fdPath(dst2), null, MS.BIND, null)
  const top = landedAt(dst2, target, seen2, (now) => now.ino === src.ino)
  t.equal(fstatx(top).ino, src.ino, 'the returned fd is the mount root')
  close(top)
  umount2(target, MNT.UMOUNT_NOFOLLOW)
})

t.test('open_tree, mount_setattr, move_mount: a bind that has its flags before it is attached', { skip }, async (t) => {
  const { dir, track } = setup(t, { src: { 'a.txt': 'a' }, target: {}, other: {} })
  const target = join(dir, 'target')
  track(target)
  const src = openDir(join(dir, 'src'))
  const dst = openDir(target)
  t.teardown(() => { close(src); close(dst) })

  const tree = openTree(src)
  t.notOk(readMountInfo().some((m) => m.mountPoint.startsWith(dir + '/')), 'the clone is attached nowhere')
  t.throws(() => mountSetattr(tree, { set: MOUNT_ATTR.NOATIME, clear: 0 }), { code: 'EINVAL', syscall: 'mount_setattr' },
    'an atime mode needs its field cleared (what mountAttr does)')
  mountSetattr(tree, { set: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOEXEC | MOUNT_ATTR.NOATIME, clear: MOUNT_ATTR.ATIME })
  const st = statvfs(fdPath(tree)).flags
  t.ok(st & ST.RDONLY && st & ST.NOEXEC && st & ST.NOATIME, 'flags set on the detached mount')
  moveMount(tree, dst)
  close(tree)
  const mi = readMountInfo().filter((m) => m.mountPoint === target).pop()
  t.ok(mi, 'attached at the target; closing its fd now keeps it')
  t.match(mi?.mountOptions, ['ro', 'noexec', 'noatime'], `with its flags (${mi?.mountOptions.join(',')})`)
  t.equal(readFileSync(join(target, 'a.txt'), 'utf8'), 'a')
  umount2(target, MNT.UMOUNT_NOFOLLOW)

  // A clone whose fd is closed before it is attached takes nothing with it and leaves nothing.
  close(openTree(src))
  t.notOk(readMountInfo().some((m) => m.mountPoint.startsWith(dir + '/')), 'no mount is left under the test folder')
  t.throws(() => moveMount(src, dst), { name: 'ErrnoError', syscall: 'move_mount' }, 'an fd that is no detached mount is refused')
})

t.test('a libc without a symbol is known before the call (how mount-api.ts answers ENOSYS for it)', { skip: process.platform !== 'linux' && 'libc is Linux-only here' }, async (t) => {
  t.equal(declare('int tscsi_no_such_symbol(void)').resolves(), false)
  t.equal(declare('int close(int fd)').resolves(), true)
})

for (const mountApi of [true, false]) {
  t.test(`flaggedBind (${mountApi ? 'mount API' : 'scratch mount'}): flags from the start; a failure leaves nothing`, { skip }, async (t) => {
    const { dir, track } = setup(t, { src: { 'a.txt': 'a' }, fsrc: 'file', target: {}, ftarget: '', gone: {} })
    const scratchDir = join(dir, 'scratch')
    for (const p of ['target', 'ftarget', 'gone', 'scratch/dir', 'scratch/file']) track(join(dir, p))
    const attach = flaggedBind({ scratchDir, mountApi })
    const flags = parseBindFlags('', ['noexec', 'nodev'], true)
    const attached = (srcPath: string, dstPath: string, isDir: boolean): void => {
      const open = isDir ? openDir : openPath
      const src = open(srcPath)
      const dst = open(dstPath)
      try {
        attach(src, dst, flags, isDir)
      } finally {
        close(src)
        close(dst)
      }
    }

    attached(join(dir, 'src'), join(dir, 'target'), true)
    attached(join(dir, 'fsrc'), join(dir, 'ftarget'), false)
    for (const p of ['target', 'ftarget']) {
      const st = statvfs(join(dir, p)).flags
      t.ok(st & ST.RDONLY && st & ST.NOEXEC && st & ST.NODEV, `${p}: read-only, noexec, nodev`)
    }
    t.throws(() => writeFileSync(join(dir, 'ftarget'), 'x'), { code: 'EROFS' }, 'the file bind refuses writes')
    t.equal(readFileSync(join(dir, 'fsrc'), 'utf8'), 'file')
    t.equal(existsSync(scratchDir), !mountApi, `the scratch folder is ${mountApi ? 'not ' : ''}used`)

    // The target directory goes away between its open and the attach: the kernel refuses to
    // mount on a removed directory, at the last step of either way.
    const src = openDir(join(dir, 'src'))
    const dst = openDir(join(dir, 'gone'))
    rmSync(join(dir, 'gone'), { recursive: true })
    try {
      t.throws(() => attach(src, dst, flags, true), { code: 'ENOENT' }, 'the attach fails')
    } finally {
      close(src)
      close(dst)
    }
    const left = readMountInfo().map((m) => m.mountPoint).filter((mp) => mp.startsWith(dir + '/')).sort()
    t.same(left, [join(dir, 'ftarget'), join(dir, 'target')], 'nothing is left mounted but the two good binds')
  })
}
