// node/copy.ts on real filesystems, as root: the test directory's own (ext4
// here, where reflinks fall back to copying), a loop-mounted xfs with
// reflink=1, and btrfs. A tree with every kind of entry and metadata is
// copied and compared with treeDigest; a 1 GiB image is reflinked/copied and
// timed.
//
// Leak guard: teardown (registered before t.testdir()) unmounts everything
// the test mounted and detaches loop devices backed by files in its
// directory, even after a failed assertion, before tap deletes the directory.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  closeSync,
  existsSync,
  ftruncateSync,
  linkSync,
  lstatSync,
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
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import {
  MNT,
  MS,
  listLoopDevices,
  loopAttach,
  loopDetach,
  mknod,
  mount,
  parseBackingFile,
  setTimesNs,
  setXattr,
  statvfs,
  statx,
  umount2,
} from '../native/index.js'
import { CopyError, copyFile, copyImage, copyTree } from '../node/copy.js'
import { treeDigest } from '../node/digest.js'
import { loopRig, unmountQuietly } from './helpers/loopfs.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0
const rootSkip =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (chown, mknod, trusted.* xattrs, loop devices, mount); run as root to exercise it'
      : false
const needs = (...fss: string[]): string | false =>
  rootSkip ||
  (fss.includes('loop') && !existsSync('/dev/loop-control') && 'no /dev/loop-control') ||
  fss.map((f) => f !== 'loop' && !hasMkfs(f) && `mkfs.${f} missing`).find(Boolean) ||
  false

interface Env {
  dir: string
  makeFs: (name: string, fs: 'xfs' | 'btrfs', size: number) => string
  track: (mountPoint: string) => void
}

function setup(t: Test): Env {
  const { dir, mounts } = loopRig(t)
  const MKFS = { xfs: ['-q', '-f', '-m', 'reflink=1'], btrfs: ['-q', '-f'] }
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
        autoclear: true,
        whileOpen: (a) => {
          const r = spawnSync(`mkfs.${fs}`, [...MKFS[fs], a.device], { encoding: 'utf8' })
          if (r.status !== 0) throw new Error(`mkfs.${fs}: ${r.stderr}`)
          mount(a.device, mnt, fs, 0, null)
        },
      })
      return mnt
    },
  }
}


/** A POSIX ACL in the xattr format (version 2; entries sorted by tag). */
function acl(entries: [tag: number, perm: number, id?: number][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length)
  b.writeUInt32LE(2, 0)
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i)
    b.writeUInt16LE(perm, 6 + 8 * i)
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i)
  })
  return b
}
const [USER_OBJ, USER, GROUP_OBJ, MASK, OTHER] = [1, 2, 4, 0x10, 0x20]

const RAW_NAME = Buffer.from([0x6e, 0xe9, 0xff]) // not UTF-8
const T0 = 1_700_000_000_123_456_789n

/** Every kind of entry and metadata copyTree promises to keep. */
function buildTree(root: string): void {
  const p = (...s: string[]): string => join(root, ...s)
  mkdirSync(root)
  mkdirSync(p('sub', 'deeper'), { recursive: true })
  writeFileSync(p('plain.txt'), 'hello\n', { mode: 0o640 })
  writeFileSync(p('empty'), '')
  writeFileSync(p('random.bin'), randomBytes(3 * MiB + 123)) // several chunks, odd tail
  writeFileSync(p('sub', 'deeper', 'leaf'), 'leaf')
  // 64 MiB with two 4 KiB islands and a trailing hole.
  const fd = openSync(p('sparse.img'), 'w')
  writeSync(fd, Buffer.alloc(4 * KiB, 0x5a), 0, 4 * KiB, 1 * MiB)
  writeSync(fd, Buffer.alloc(4 * KiB, 0xa5), 0, 4 * KiB, 40 * MiB)
  ftruncateSync(fd, 64 * MiB)
  closeSync(fd)
  writeFileSync(p('setuid'), '#!/bin/sh\n')
  symlinkSync('plain.txt', p('link'))
  symlinkSync('no/such/target', p('dangling'))
  writeFileSync(p('hard1'), 'two names')
  linkSync(p('hard1'), p('sub', 'hard2'))
  mknod(p('fifo'), 0o010600)
  mknod(p('null'), 0o020666, statSync('/dev/null', { bigint: true }).rdev)
  writeFileSync(Buffer.concat([Buffer.from(root + '/'), RAW_NAME]), 'raw name')
  for (const [dir, mode] of [['d0755', 0o755], ['d1777', 0o1777], ['d2770', 0o2770]] as const) {
    mkdirSync(p(dir))
    writeFileSync(p(dir, 'f'), dir)
    spawnSync('chmod', [mode.toString(8), p(dir)])
  }
  for (const f of ['plain.txt', 'sub', 'sub/hard2', 'd1777', 'link', 'fifo']) spawnSync('chown', ['-h', '1000:1000', p(f)])
  spawnSync('chmod', ['4755', p('setuid')]) // after chown: chown clears setuid
  setXattr(p('plain.txt'), 'user.comment', Buffer.from('kept'))
  setXattr(p('plain.txt'), 'trusted.bin', Buffer.from([0, 1, 254, 255]))
  setXattr(p('sub'), 'user.dir', Buffer.from('on a directory'))
  setXattr(p('link'), 'trusted.link', Buffer.from('on a symlink'))
  setXattr(p('sparse.img'), 'user.empty', Buffer.alloc(0))
  setXattr(p('d0755', 'f'), 'system.posix_acl_access', acl([[USER_OBJ, 6], [USER, 6, 1000], [GROUP_OBJ, 4], [MASK, 6], [OTHER, 4]]))
  // Times last, children before parents (creating entries bumps the parent's mtime).
  const all = ['plain.txt', 'empty', 'random.bin', 'sparse.img', 'setuid', 'link', 'dangling', 'hard1', 'fifo', 'null',
    'sub/deeper/leaf', 'sub/deeper', 'sub', 'd0755/f', 'd0755', 'd1777/f', 'd1777', 'd2770/f', 'd2770']
  all.forEach((f, i) => setTimesNs(p(f), T0 - 10n ** 9n * BigInt(i), T0 + BigInt(i * 1_000_001)))
  setTimesNs(root, T0, T0 + 7n)
}

async function treeTest(t: Test, base: string, expectReflink: boolean): Promise<void> {
  const src = join(base, 'src')
  const dst = join(base, 'dst')
  buildTree(src)
  const atimeBefore = statSync(join(src, 'random.bin'), { bigint: true }).atimeNs
  const digest = await treeDigest(src)
  let last = 0
  const t0 = performance.now()
  const r = await copyTree(src, dst, { onProgress: (b) => (last = b) })
  t.comment(`copyTree: ${(performance.now() - t0).toFixed(1)} ms, ${JSON.stringify(r)}`)
  t.equal(await treeDigest(dst), digest, 'treeDigest(src) === treeDigest(dst)')
  t.equal(r.files, 16, 'non-directory entries, the second hard-link name included')
  t.equal(last, r.bytes, 'progress reached the total')
  if (expectReflink) t.ok(r.reflinked > 0, `reflinked ${r.reflinked} files`)
  else t.equal(r.reflinked, 0, 'no reflinks here')
  t.same(r.skipped, [])

  const sp = statSync(join(dst, 'sparse.img'), { bigint: true })
  t.equal(sp.size, BigInt(64 * MiB), 'sparse file size exact')
  t.ok(sp.blocks * 512n < BigInt(MiB), `sparse copy allocates ${sp.blocks / 2n} KiB`)
  t.equal(statSync(join(dst, 'hard1')).ino, statSync(join(dst, 'sub', 'hard2')).ino, 'hard links share an inode')
  t.equal(statSync(join(dst, 'setuid')).mode & 0o7777, 0o4755, 'setuid kept')
  t.equal(statSync(join(dst, 'd1777')).mode & 0o7777, 0o1777, 'sticky kept')
  t.equal(statSync(join(dst, 'd2770')).mode & 0o7777, 0o2770, 'setgid dir kept')
  t.equal(lstatSync(join(dst, 'link')).uid, 1000, 'symlink owner kept (lchown)')
  t.equal(readFileSync(Buffer.concat([Buffer.from(dst + '/'), RAW_NAME]), 'utf8'), 'raw name', 'non-UTF-8 name kept')
  const a = statSync(join(src, 'plain.txt'), { bigint: true })
  const b = statSync(join(dst, 'plain.txt'), { bigint: true })
  t.equal(b.atimeNs, a.atimeNs, 'atime copied to the nanosecond')
  t.equal(statSync(join(src, 'random.bin'), { bigint: true }).atimeNs, atimeBefore, 'reading the source left its atime alone')
}

t.test('copyTree on the test directory filesystem (no reflink)', { skip: needs() }, async (t) => {
  const env = setup(t)
  await treeTest(t, env.dir, false)

  await t.rejects(copyTree(join(env.dir, 'src'), join(env.dir, 'dst')), { code: 'EEXIST' }, 'dst must not exist')
  symlinkSync('src', join(env.dir, 'srclink'))
  await t.rejects(copyTree(join(env.dir, 'srclink'), join(env.dir, 'x')), { code: 'ENOTDIR' }, 'src may not be a symlink (O_DIRECTORY|O_NOFOLLOW says ENOTDIR)')
  const r = await copyTree(join(env.dir, 'src'), join(env.dir, 'noreflink'), { reflink: false })
  t.equal(r.reflinked, 0)
  t.equal(await treeDigest(join(env.dir, 'noreflink')), await treeDigest(join(env.dir, 'src')), 'reflink: false')

  // New entries inherit a default ACL from their parent; the copy must not.
  const parent = join(env.dir, 'inherit')
  mkdirSync(parent)
  setXattr(parent, 'system.posix_acl_default', acl([[USER_OBJ, 7], [USER, 7, 1000], [GROUP_OBJ, 5], [MASK, 7], [OTHER, 5]]))
  await copyTree(join(env.dir, 'src'), join(parent, 'dst'))
  t.equal(await treeDigest(join(parent, 'dst')), await treeDigest(join(env.dir, 'src')), 'no ACL inherited from the destination')
})

t.test('copyTree on xfs with reflink=1', { skip: needs('loop', 'xfs') }, async (t) => {
  const env = setup(t)
  await treeTest(t, env.makeFs('xfs', 'xfs', 400 * MiB), true)
})

t.test('copyTree on btrfs', { skip: needs('loop', 'btrfs') }, async (t) => {
  const env = setup(t)
  await treeTest(t, env.makeFs('btrfs', 'btrfs', 256 * MiB), true)
})

t.test('sockets are skipped and listed', { skip: needs() }, async (t) => {
  const env = setup(t)
  const src = join(env.dir, 'src')
  mkdirSync(src)
  writeFileSync(join(src, 'f'), 'x')
  const { createServer } = await import('node:net')
  const srv = createServer()
  await new Promise<void>((res) => srv.listen(join(src, 'sock'), res))
  t.teardown(() => srv.close())
  const r = await copyTree(src, join(env.dir, 'dst'))
  t.same(r.skipped, ['sock'])
  t.equal(r.files, 1)
})

t.test('refuses to cross into another mount', { skip: needs() }, async (t) => {
  const env = setup(t)
  const src = join(env.dir, 'src')
  mkdirSync(join(src, 'a', 'tmp'), { recursive: true })
  mkdirSync(join(src, 'bind'))
  mkdirSync(join(env.dir, 'elsewhere'))
  writeFileSync(join(env.dir, 'elsewhere', 'secret'), 'not part of the volume')
  env.track(join(src, 'a', 'tmp'))
  mount('tmpfs', join(src, 'a', 'tmp'), 'tmpfs', 0, 'size=1m')
  const e1 = await copyTree(src, join(env.dir, 'dst1')).catch((e: unknown) => e)
  t.ok(e1 instanceof CopyError && e1.code === 'CROSSES_MOUNT', 'another filesystem: CROSSES_MOUNT')
  t.match((e1 as Error).message, join(src, 'a', 'tmp'), 'the message names the mount point')
  umount2(join(src, 'a', 'tmp'), 0)

  // Same filesystem, so same st_dev: only the mount id tells.
  env.track(join(src, 'bind'))
  mount(join(env.dir, 'elsewhere'), join(src, 'bind'), null, MS.BIND, null)
  const e2 = await copyTree(src, join(env.dir, 'dst2')).catch((e: unknown) => e)
  t.ok(e2 instanceof CopyError && e2.code === 'CROSSES_MOUNT', 'a bind mount of the same filesystem: CROSSES_MOUNT')
  t.notOk(existsSync(join(env.dir, 'dst2', 'bind', 'secret')), 'nothing copied through it')
})

t.test('abort mid-copy', { skip: needs() }, async (t) => {
  const env = setup(t)
  const src = join(env.dir, 'src')
  mkdirSync(src)
  writeFileSync(join(src, 'big'), Buffer.alloc(32 * MiB, 1))
  writeFileSync(join(src, 'z-after'), 'never reached')
  const ac = new AbortController()
  const seen: number[] = []
  const p = copyTree(src, join(env.dir, 'dst'), {
    reflink: false,
    signal: ac.signal,
    onProgress: (b) => {
      seen.push(b)
      if (b >= 4 * MiB) ac.abort()
    },
  })
  await t.rejects(p, { name: 'AbortError' }, 'rejects with the abort reason')
  t.ok(seen.length >= 4 && seen.length < 32, `stopped after ${seen.length} chunks`)
  t.notOk(existsSync(join(env.dir, 'dst', 'z-after')), 'nothing after the abort point')
  t.ok(existsSync(join(env.dir, 'dst')), 'dst left for the caller to remove')

  const ac2 = new AbortController()
  const p2 = copyFile(join(src, 'big'), join(env.dir, 'one'), {
    reflink: false,
    signal: ac2.signal,
    onProgress: () => ac2.abort(new Error('stop')),
  })
  await t.rejects(p2, { message: 'stop' }, 'copyFile rejects with a custom reason')
  t.notOk(existsSync(join(env.dir, 'one')), 'and removes its partial dst')
  ac2.abort()
  await t.rejects(copyTree(src, join(env.dir, 'never'), { signal: ac2.signal }), 'already aborted')
  t.notOk(existsSync(join(env.dir, 'never')), 'nothing created')
})

async function sha256(p: string): Promise<string> {
  const h = createHash('sha256')
  const fh = await open(p, 'r')
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 4 * MiB })) h.update(chunk as Buffer)
  } finally {
    await fh.close()
  }
  return h.digest('hex')
}

/** A 1 GiB sparse image holding an ext4 filesystem and 32 MiB of data. */
function makeImage(path: string): void {
  writeFileSync(path, '')
  truncateSync(path, GiB)
  const r = spawnSync('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', path], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`mkfs.ext4: ${r.stderr}`)
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, randomBytes(32 * MiB), 0, 32 * MiB, 300 * MiB)
  } finally {
    closeSync(fd)
  }
}

for (const fs of ['xfs', 'btrfs', 'ext4'] as const) {
  const skip = fs === 'ext4' ? needs('ext4') : needs('loop', fs, 'ext4')
  t.test(`copyImage: 1 GiB sparse image on ${fs}`, { skip, timeout: 300_000 }, async (t) => {
    const env = setup(t)
    const host = fs === 'ext4' ? env.dir : env.makeFs(fs, fs, 2 * GiB)
    const img = join(host, 'vol.img')
    makeImage(img)
    const used = (): number => {
      spawnSync('sync', ['-f', host])
      const v = statvfs(host)
      return Number(v.blocks - v.bfree) * v.fragmentSize
    }
    const before = used()
    const lag = monitorEventLoopDelay({ resolution: 5 })
    lag.enable()
    const t0 = performance.now()
    const r = await copyImage(img, join(host, 'snap.img'))
    const ms = performance.now() - t0
    lag.disable()
    const extra = used() - before
    const alloc = Number(statSync(img).blocks) * 512
    t.comment(`${fs}: copyImage 1 GiB (${(alloc / MiB).toFixed(1)} MiB allocated, freshly written): ${ms.toFixed(1)} ms, ` +
      `reflinked=${r.reflinked}, extra space ${(extra / MiB).toFixed(2)} MiB, max event-loop delay ${(lag.max / 1e6).toFixed(1)} ms`)
    const t1 = performance.now()
    await copyImage(img, join(host, 'snap2.img'))
    t.comment(`${fs}: again, source now clean: ${(performance.now() - t1).toFixed(1)} ms`)
    t.equal(r.bytes, GiB)
    t.equal(r.reflinked, fs !== 'ext4', fs === 'ext4' ? 'copied' : 'reflinked')
    if (fs !== 'ext4') t.ok(extra < 4 * MiB, 'a reflink uses almost no space')
    // The host filesystem is shared with everything else running: its df is
    // only reported; the copy's own allocation is what is checked.
    else t.ok(statSync(join(host, 'snap.img')).blocks <= statSync(img).blocks, 'the copy is as sparse as the source')
    t.equal(await sha256(join(host, 'snap.img')), await sha256(img), 'identical content')
    t.equal(statSync(join(host, 'snap.img')).size, GiB)
  })
}
