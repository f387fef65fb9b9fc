// native/xattr.ts (xattrs, ns timestamps, mknod) and native/seek.ts
// (SEEK_DATA/SEEK_HOLE): pure encodings everywhere, real calls as root on the
// test directory's filesystem. Nothing here touches a path outside it.
import t from 'tap'
import { closeSync, ftruncateSync, lstatSync, openSync, realpathSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import {
  ErrnoError,
  encodeTimespecs,
  getXattr,
  isNoXattr,
  isXattrUnsupported,
  listXattrs,
  mknod,
  removeXattr,
  seekData,
  seekHole,
  setTimesNs,
  setXattr,
} from '../native/index.js'

const rootSkip =
  process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root (trusted.* xattrs, mknod); run as root' : false

function errOf(fn: () => unknown): ErrnoError | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof ErrnoError) return e
    throw e
  }
  return undefined
}

t.test('pure: struct timespec[2]', async (t) => {
  const b = encodeTimespecs(1_700_000_000_123_456_789n, -1n)
  t.equal(b.length, 32)
  t.equal(b.readBigInt64LE(0), 1_700_000_000n, 'atime sec')
  t.equal(b.readBigInt64LE(8), 123_456_789n, 'atime nsec')
  t.equal(b.readBigInt64LE(16), -1n, 'before the epoch: floor, not truncation')
  t.equal(b.readBigInt64LE(24), 999_999_999n, 'nsec stays in [0, 1e9)')
})

t.test('pure: bad arguments are refused before any syscall', async (t) => {
  t.equal(errOf(() => listXattrs('/a\0b'))?.code, 'EINVAL', 'NUL in a string path')
  t.equal(errOf(() => getXattr(Buffer.from('/a\0b'), 'user.x'))?.code, 'EINVAL', 'NUL in a Buffer path')
  t.equal(errOf(() => mknod('/nonexistent/x', 0o100644))?.code, 'EINVAL', 'mknod of a regular file')
  t.throws(() => seekData(3, -1), RangeError)
  t.equal(errOf(() => seekHole(-1, 0))?.code, 'EBADF')
})

t.test('xattrs', { skip: rootSkip }, async (t) => {
  const dir = realpathSync(t.testdir({ f: 'data', d: {} }))
  const f = join(dir, 'f')
  t.same(listXattrs(f), [], 'none yet')
  t.ok(isNoXattr(errOf(() => getXattr(f, 'user.missing'))), 'missing attribute: ENODATA')
  setXattr(f, 'user.a', Buffer.from('alpha'))
  setXattr(f, 'user.empty', Buffer.alloc(0))
  const big = Buffer.alloc(3000, 0xab)
  setXattr(f, 'trusted.big', big)
  t.same(listXattrs(f).sort(), ['trusted.big', 'user.a', 'user.empty'])
  t.equal(getXattr(f, 'user.a').toString(), 'alpha')
  t.equal(getXattr(f, 'user.empty').length, 0, 'empty value')
  t.ok(getXattr(f, 'trusted.big').equals(big), '3000-byte value')
  setXattr(f, 'user.a', Buffer.from('replaced, and longer'))
  t.equal(getXattr(f, 'user.a').toString(), 'replaced, and longer', 'replace')
  removeXattr(f, 'user.a')
  removeXattr(f, 'user.a')
  t.notOk(listXattrs(f).includes('user.a'), 'removed; removing again is not an error')

  // l-variants: the link itself, not its target.
  const link = join(dir, 'link')
  symlinkSync('f', link)
  setXattr(link, 'trusted.onlink', Buffer.from('L'))
  t.same(listXattrs(link), ['trusted.onlink'], 'symlink has its own xattrs')
  t.notOk(listXattrs(f).includes('trusted.onlink'), 'target untouched')
  t.equal(errOf(() => setXattr(link, 'user.x', Buffer.from('x')))?.code, 'EPERM', 'user.* is refused on symlinks')

  // A name that is not UTF-8, reached through a Buffer path.
  const raw = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x66, 0xff, 0x6f])])
  writeFileSync(raw, 'x')
  setXattr(raw, 'user.raw', Buffer.from([0, 1, 2, 0xff]))
  t.same([...getXattr(raw, 'user.raw')], [0, 1, 2, 0xff], 'binary value on a non-UTF-8 name')

  t.same(listXattrs('/proc/self/status'), [], 'procfs: an empty list, not an error')
  t.ok(isXattrUnsupported(errOf(() => getXattr('/proc/self/status', 'user.x'))), 'procfs get: ENOTSUP')
  t.equal(errOf(() => listXattrs(join(dir, 'nope')))?.code, 'ENOENT')
})

t.test('nanosecond times, without following symlinks', { skip: rootSkip }, async (t) => {
  const dir = realpathSync(t.testdir({ f: 'x' }))
  const f = join(dir, 'f')
  setTimesNs(f, 1_600_000_000_987_654_321n, 1_700_000_000_123_456_789n)
  const st = statSync(f, { bigint: true })
  t.equal(st.mtimeNs, 1_700_000_000_123_456_789n, 'mtime to the nanosecond')
  t.equal(st.atimeNs, 1_600_000_000_987_654_321n, 'atime to the nanosecond')
  const link = join(dir, 'link')
  symlinkSync('f', link)
  setTimesNs(link, 1n, 2_000_000_001n)
  t.equal(lstatSync(link, { bigint: true }).mtimeNs, 2_000_000_001n, 'the link itself')
  t.equal(statSync(f, { bigint: true }).mtimeNs, 1_700_000_000_123_456_789n, 'not its target')
})

t.test('mknod: fifo and device nodes', { skip: rootSkip }, async (t) => {
  const dir = realpathSync(t.testdir({}))
  mknod(join(dir, 'fifo'), 0o010640)
  const fst = lstatSync(join(dir, 'fifo'))
  t.ok(fst.isFIFO(), 'fifo')
  const nullRdev = statSync('/dev/null', { bigint: true }).rdev
  mknod(join(dir, 'null'), 0o020600, nullRdev)
  const cst = lstatSync(join(dir, 'null'), { bigint: true })
  t.ok(cst.isCharacterDevice(), 'char device')
  t.equal(cst.rdev, nullRdev, 'same device number as /dev/null')
  // glibc makedev(7, 200): a loop minor that does not exist; the node is inert.
  mknod(join(dir, 'blk'), 0o060600, (7n << 8n) | 200n)
  const bst = lstatSync(join(dir, 'blk'), { bigint: true })
  t.ok(bst.isBlockDevice(), 'block device')
  t.equal(bst.rdev, 0x7c8n, 'device number as given')
  t.equal(errOf(() => mknod(join(dir, 'fifo'), 0o010600))?.code, 'EEXIST')
})

t.test('SEEK_DATA / SEEK_HOLE', { skip: rootSkip }, async (t) => {
  const dir = realpathSync(t.testdir({}))
  const p = join(dir, 'sparse')
  const MiB = 1 << 20
  const fd = openSync(p, 'w+')
  try {
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, MiB)
    writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 5 * MiB)
    ftruncateSync(fd, 8 * MiB)
    t.equal(seekData(fd, 0), MiB, 'first data')
    t.equal(seekHole(fd, MiB), MiB + 4096, 'its end')
    t.equal(seekData(fd, MiB + 4096), 5 * MiB, 'second island')
    t.equal(seekHole(fd, 5 * MiB), 5 * MiB + 4096)
    t.equal(seekData(fd, 5 * MiB + 4096), null, 'no data in the trailing hole: null (ENXIO)')
    t.equal(seekHole(fd, 8 * MiB - 1), 8 * MiB - 1, 'inside the trailing hole')
    t.equal(seekHole(fd, 8 * MiB), null, 'at EOF: null')
  } finally {
    closeSync(fd)
  }
})
