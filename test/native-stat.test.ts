// Unprivileged checks of the statx/statvfs/fd bindings against Node's own
// fs results, so a struct layout mistake shows up as a field mismatch.
import t from 'tap'
import { existsSync, lstatSync, statSync, statfsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import {
  ErrnoError,
  ST,
  close,
  fdPath,
  fstatx,
  openDir,
  openPath,
  readMountInfo,
  statvfs,
  statx,
  withPath,
} from '../native/index.js'

const linux = process.platform === 'linux' ? false : 'Linux only'
const koffiLoaded = (): boolean => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/koffi/'))

// Must stay the first test: it checks that importing the layer did not load
// the native addon, and that the first real call does.
t.test('koffi is loaded lazily', { skip: linux }, async (t) => {
  t.equal(koffiLoaded(), false, 'import alone does not load koffi')
  statx('/')
  t.equal(koffiLoaded(), true, 'first call loads it')
})

t.test('statx matches lstat/stat', { skip: linux }, async (t) => {
  const dir = t.testdir({ f: 'hello world', d: {}, l: t.fixture('symlink', 'f') })
  const f = join(dir, 'f')
  const st = statx(f)
  const ls = lstatSync(f, { bigint: true })
  t.equal(st.type, 'file')
  t.equal(st.ino, ls.ino)
  t.equal(st.size, 11n)
  t.equal(st.blocks, ls.blocks)
  t.equal(st.mode, Number(ls.mode))
  t.equal(st.uid, Number(ls.uid))
  t.equal(st.gid, Number(ls.gid))
  t.equal(st.nlink, Number(ls.nlink))
  t.match(st.dev, /^\d+:\d+$/)
  t.ok(st.mntId > 0n, 'kernel reports a mount id')
  t.equal(st.isMountRoot, false)

  t.equal(statx(join(dir, 'd')).type, 'dir')
  const l = statx(join(dir, 'l'))
  t.equal(l.type, 'symlink', 'last component not followed by default')
  t.equal(l.ino, lstatSync(join(dir, 'l'), { bigint: true }).ino)
  const lf = statx(join(dir, 'l'), { follow: true })
  t.equal(lf.type, 'file')
  t.equal(lf.ino, st.ino)

  t.equal(statx('/dev/null').type, 'char')
  const nul = statSync('/dev/null', { bigint: true })
  t.equal(statx('/dev/null').rdevMajor, Number(nul.rdev >> 8n) & 0xfff)
  t.equal(statx('/').isMountRoot, true, '/ is always a mount root')
  t.equal(statx('/proc').isMountRoot, true, '/proc is a mount root')
})

t.test('statx errors', { skip: linux }, async (t) => {
  const dir = t.testdir({ f: 'x' })
  t.throws(() => statx(join(dir, 'missing')), { name: 'ErrnoError', code: 'ENOENT', errno: 2, syscall: 'statx', path: join(dir, 'missing') })
  t.throws(() => statx(join(dir, 'f', 'x')), { code: 'ENOTDIR' })
  t.throws(() => statx(`${dir}\0/f`), { code: 'EINVAL' }, 'embedded NUL is rejected, not truncated')
  t.throws(() => fstatx(-1), ErrnoError)
})

t.test('statvfs matches statfs', { skip: linux }, async (t) => {
  const v = statvfs('/')
  const s = statfsSync('/', { bigint: true })
  t.equal(BigInt(v.blockSize), s.bsize)
  t.equal(v.blocks, s.blocks)
  t.equal(v.files, s.files)
  t.ok(v.bavail <= v.bfree)
  t.ok(v.nameMax > 0 && v.nameMax <= 4096)
  t.equal(typeof v.flags, 'number')
  t.equal(typeof v.fsid, 'bigint')
  // f_flag must agree with the per-mount options the kernel reports.
  for (const path of ['/', '/proc']) {
    const opts = readMountInfo().filter((m) => m.mountPoint === path).at(-1)!.mountOptions
    const flags = statvfs(path).flags
    t.equal(!!(flags & ST.RDONLY), opts.includes('ro'), `${path} ro`)
    t.equal(!!(flags & ST.NOSUID), opts.includes('nosuid'), `${path} nosuid`)
    t.equal(!!(flags & ST.NOEXEC), opts.includes('noexec'), `${path} noexec`)
    t.equal(!!(flags & ST.RELATIME), opts.includes('relatime'), `${path} relatime`)
  }
  t.throws(() => statvfs('/definitely/missing'), { code: 'ENOENT', syscall: 'statvfs' })
})

t.test('openPath / fstatx / withPath', { skip: linux }, async (t) => {
  const dir = t.testdir({ f: 'x', d: {}, ld: t.fixture('symlink', 'd'), lf: t.fixture('symlink', 'f') })
  const fd = openPath(join(dir, 'f'))
  t.ok(Number.isInteger(fd) && fd > 2)
  t.equal(fdPath(fd), `/proc/self/fd/${fd}`)
  t.equal(fstatx(fd).ino, statx(join(dir, 'f')).ino)
  t.equal(fstatx(fd).type, 'file')
  close(fd)
  t.notOk(existsSync(`/proc/self/fd/${fd}`), 'closed')
  t.throws(() => close(fd), { code: 'EBADF', syscall: 'close' })

  const dfd = openDir(join(dir, 'd'))
  t.equal(fstatx(dfd).type, 'dir')
  close(dfd)
  t.throws(() => openDir(join(dir, 'f')), { code: 'ENOTDIR' })

  // Symlinks in the last component are refused in both modes.
  t.throws(() => openPath(join(dir, 'lf')), { name: 'ErrnoError', code: 'ELOOP', syscall: 'open' })
  t.throws(() => openPath(join(dir, 'ld')), { code: 'ELOOP' })
  t.throws(() => openDir(join(dir, 'ld')), { code: 'ENOTDIR' }, 'O_DIRECTORY refuses the link')
  // A trailing slash would make the kernel follow the link; it is stripped.
  t.throws(() => openPath(`${join(dir, 'lf')}/`), { code: 'ELOOP' })
  t.throws(() => openPath(`${join(dir, 'ld')}//`), { code: 'ELOOP' })
  t.equal(statx(`${join(dir, 'ld')}/`).type, 'symlink')
  t.equal(statx(`${join(dir, 'ld')}/`, { follow: true }).type, 'dir')
  // ...but earlier components are resolved as usual.
  withPath(`${join(dir, 'ld')}/.`, { directory: true }, (fd) => t.equal(fstatx(fd).ino, statx(join(dir, 'd')).ino))

  let seen = -1
  const r = withPath(join(dir, 'd'), undefined, (fd) => {
    seen = fd
    return 'result'
  })
  t.equal(r, 'result')
  t.notOk(existsSync(`/proc/self/fd/${seen}`), 'withPath closed the fd')
  t.throws(
    () =>
      withPath(join(dir, 'd'), {}, (fd) => {
        seen = fd
        throw new Error('boom')
      }),
    { message: 'boom' },
  )
  t.notOk(existsSync(`/proc/self/fd/${seen}`), 'closed even when fn throws')
  t.throws(() => openPath(join(dir, 'missing')), { code: 'ENOENT', path: join(dir, 'missing') })
})
