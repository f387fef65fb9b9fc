// Loop devices through native/loop.ts: pure struct encoding everywhere, and,
// as root, real attachments with real filesystems on them.
//
// Leak guard: every root test registers its teardown before t.testdir(), and
// that teardown unmounts what the test mounted and then detaches every loop
// device whose backing file lies inside the test's directory, whatever the
// test itself managed to do. Only then does tap delete the directory.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, fsyncSync, mkdirSync, openSync, closeSync, writeSync, readFileSync, realpathSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  ErrnoError,
  MNT,
  MS,
  blockDeviceSize,
  fromNodeError,
  listLoopDevices,
  loopAttach,
  loopBackingFile,
  loopDetach,
  loopSetCapacity,
  loopStatus,
  mount,
  parseBackingFile,
  statx,
  umount2,
} from '../native/index.js'
import { checkLoopLayouts, decodeLoopInfo64, encodeLoopConfig } from '../native/loop.js'
import { ioc } from '../native/ioctl.js'
import { loopRig, unmountQuietly } from './helpers/loopfs.js'

const MiB = 1024 * 1024
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0

const skip =
  process.platform !== 'linux'
    ? 'loop devices need Linux'
    : process.getuid?.() !== 0
      ? 'loop tests need root (CAP_SYS_ADMIN); run as root to exercise them'
      : !existsSync('/dev/loop-control')
        ? 'no /dev/loop-control on this machine'
        : false

t.test('pure: struct loop_config / loop_info64 encoding', async (t) => {
  const b = encodeLoopConfig({ backingFd: 17, blockSize: 4096, flags: 4 | 16, fileName: 'x'.repeat(100) })
  t.equal(b.length, 304, 'sizeof(struct loop_config)')
  t.equal(b.readUInt32LE(0), 17, 'fd at 0')
  t.equal(b.readUInt32LE(4), 4096, 'block_size at 4')
  t.equal(b.readUInt32LE(8 + 52), 20, 'info.lo_flags at 8+52')
  t.equal(b.subarray(8 + 56, 8 + 56 + 64).toString('latin1'), 'x'.repeat(63) + '\0', 'lo_file_name cut to 63 bytes + NUL')
  t.ok(b.subarray(8 + 120).every((x) => x === 0), 'crypt name, key, lo_init and __reserved stay zero')

  const info = Buffer.alloc(232)
  // huge_encode_dev(MKDEV(259, 0x12345)): minor low byte, major, minor rest << 12.
  info.writeBigUInt64LE(0x45n | (259n << 8n) | (0x12300n << 12n), 0)
  info.writeBigUInt64LE(99n, 8)
  info.writeBigUInt64LE(4096n, 24)
  info.writeUInt32LE(5, 40)
  info.writeUInt32LE(1, 52)
  t.same(decodeLoopInfo64(info), {
    backingDev: '259:74565',
    backingIno: 99n,
    offset: 4096n,
    sizeLimit: 0n,
    number: 5,
    flags: 1,
  })
})

t.test('pure: ioctl numbers and sysfs parsing', async (t) => {
  // Values printed by a C program including <linux/fs.h> on x86-64.
  t.equal(ioc('r', 0x12, 114, 8), 0x80081272, 'BLKGETSIZE64')
  t.same(parseBackingFile('/a b/img'), { path: '/a b/img', deleted: false })
  t.same(parseBackingFile('/a/img (deleted)'), { path: '/a/img', deleted: true })
})

t.test('struct layouts agree with koffi', async (t) => {
  t.doesNotThrow(() => checkLoopLayouts())
})

interface Env {
  dir: string
  track: (mountPoint: string) => void
  image: (name: string, size: number) => string
}

function setup(t: Test): Env {
  const { dir, mounts } = loopRig(t)
  return {
    dir,
    track: (m) => mounts.push(m),
    image: (name, size) => {
      const p = join(dir, name)
      writeFileSync(p, '')
      truncateSync(p, size)
      return p
    },
  }
}


function mkfs(fs: string, device: string, ...args: string[]): void {
  const r = spawnSync(`mkfs.${fs}`, [...args, device], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`mkfs.${fs} failed: ${r.stderr}`)
}

function errOf(fn: () => unknown): ErrnoError | undefined {
  try {
    fn()
  } catch (e) {
    return fromNodeError(e, 'test')
  }
  return undefined
}

t.test('attach, mkfs.ext4, mount, write, grow, detach', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 64 * MiB)
  const att = loopAttach(img, { directIo: true })
  t.match(att.device, /^\/dev\/loop\d+$/)
  t.equal(att.device, `/dev/loop${att.number}`)
  t.comment(`direct I/O granted on ${img}: ${att.directIo}`)

  t.equal(loopBackingFile(att.device), img, 'sysfs backing_file names our image')
  t.equal(blockDeviceSize(att.device), BigInt(64 * MiB), 'BLKGETSIZE64 = 64 MiB')
  const st = loopStatus(att.device)
  const fst = statx(img)
  t.equal(st.backingDev, fst.dev, 'LOOP_GET_STATUS64 backing dev')
  t.equal(st.backingIno, fst.ino, 'and inode')
  t.equal(st.number, att.number)
  const listed = listLoopDevices().find((d) => d.device === att.device)
  t.ok(listed, 'listLoopDevices finds it')
  t.equal(listed?.backingFile, img)
  t.equal(listed?.sizeBytes, BigInt(64 * MiB))
  t.equal(listed?.readOnly, false)
  t.equal(listed?.directIo, att.directIo)

  mkfs('ext4', att.device, '-q', '-F')
  const mnt = join(env.dir, 'mnt')
  mkdirSync(mnt)
  env.track(mnt)
  mount(att.device, mnt, 'ext4', MS.NOSUID | MS.NODEV, null)
  writeFileSync(join(mnt, 'hello.txt'), 'hello loop')
  // While mounted, LOOP_CLR_FD cannot detach: the kernel defers it to the
  // last close instead, i.e. the unmount.
  const other = loopAttach(env.image('other.img', MiB))
  t.equal(loopDetach(att.device, { backingFile: join(env.dir, 'other.img') }), 'not-attached', 'guard: not backed by other.img, left alone')
  t.equal(loopBackingFile(att.device), img, 'still attached')
  t.equal(loopDetach(other.device), 'detached')
  umount2(mnt, MNT.UMOUNT_NOFOLLOW)

  truncateSync(img, 128 * MiB)
  t.equal(blockDeviceSize(att.device), BigInt(64 * MiB), 'size unchanged before LOOP_SET_CAPACITY')
  loopSetCapacity(att.device)
  t.equal(blockDeviceSize(att.device), BigInt(128 * MiB), 'LOOP_SET_CAPACITY -> 128 MiB')

  t.equal(loopDetach(att.device, { backingFile: img }), 'detached')
  t.equal(loopBackingFile(att.device), undefined, 'gone from sysfs')
  t.equal(loopDetach(att.device), 'not-attached', 'detaching twice is fine')
  t.equal(loopDetach(att.device, { backingFile: img }), 'not-attached', 'also with the guard')
  t.notOk(listLoopDevices().some((d) => d.backingFile === img), 'no longer listed')
})

t.test('detach while mounted is deferred to the unmount', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 32 * MiB)
  const att = loopAttach(img)
  mkfs('ext4', att.device, '-q', '-F')
  const mnt = join(env.dir, 'mnt')
  mkdirSync(mnt)
  env.track(mnt)
  mount(att.device, mnt, 'ext4', 0, null)
  t.equal(loopDetach(att.device), 'deferred')
  t.equal(loopBackingFile(att.device), img, 'still bound while mounted')
  t.ok(listLoopDevices().find((d) => d.device === att.device)?.autoclear, 'autoclear now set')
  umount2(mnt, MNT.UMOUNT_NOFOLLOW)
  t.equal(loopBackingFile(att.device), undefined, 'detached at the unmount')
})

t.test('autoclear + whileOpen: the mount keeps it, the unmount frees it', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 32 * MiB)
  const pre = loopAttach(img)
  mkfs('ext4', pre.device, '-q', '-F')
  t.equal(loopDetach(pre.device), 'detached')

  t.throws(() => loopAttach(img, { autoclear: true }), TypeError, 'autoclear without whileOpen is refused')

  const mnt = join(env.dir, 'mnt')
  mkdirSync(mnt)
  env.track(mnt)
  const att = loopAttach(img, { autoclear: true, whileOpen: (a) => mount(a.device, mnt, 'ext4', 0, null) })
  t.equal(att.autoclear, true)
  t.equal(loopBackingFile(att.device), img, 'bound after return: the mount holds it open')
  writeFileSync(join(mnt, 'f'), 'x')
  umount2(mnt, MNT.UMOUNT_NOFOLLOW)
  t.equal(loopBackingFile(att.device), undefined, 'autocleared at unmount')

  // A failing whileOpen leaves nothing attached, with or without autoclear.
  for (const autoclear of [false, true]) {
    let dev = ''
    t.throws(
      () =>
        loopAttach(img, {
          autoclear,
          whileOpen: (a) => {
            dev = a.device
            throw new Error('boom')
          },
        }),
      /boom/,
    )
    t.equal(loopBackingFile(dev), undefined, `failed setup detached (autoclear=${autoclear})`)
  }
})

t.test('an image deleted while attached can still be detached by name', { skip }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 8 * MiB)
  const att = loopAttach(img)
  unlinkSync(img)
  t.equal(loopBackingFile(att.device), `${img} (deleted)`)
  const listed = listLoopDevices().find((d) => d.device === att.device)
  t.equal(listed?.deleted, true, 'listLoopDevices marks it deleted')
  t.equal(loopDetach(att.device, { backingFile: join(env.dir, 'other.img') }), 'not-attached', 'another missing file does not match')
  t.equal(loopDetach(att.device, { backingFile: img }), 'detached', 'the deleted one does')
  t.equal(loopBackingFile(att.device), undefined)
})

t.test('read-only attachment refuses writes', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 32 * MiB)
  const rw = loopAttach(img)
  mkfs('ext4', rw.device, '-q', '-F')
  loopDetach(rw.device)

  const ro = loopAttach(img, { readOnly: true })
  t.equal(ro.readOnly, true)
  const listed = listLoopDevices().find((d) => d.device === ro.device)
  t.equal(listed?.readOnly, true, '/sys/block/loopN/ro = 1')
  // The kernel lets root open a read-only disk for writing; the write fails.
  const e = errOf(() => {
    const fd = openSync(ro.device, 'r+')
    try {
      writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  })
  t.ok(e && ['EROFS', 'EACCES', 'EPERM'].includes(e.code), `writing to the device fails (${e?.code})`)
  const mnt = join(env.dir, 'mnt')
  mkdirSync(mnt)
  env.track(mnt)
  mount(ro.device, mnt, 'ext4', MS.RDONLY, null)
  t.equal(errOf(() => writeFileSync(join(mnt, 'x'), 'x'))?.code, 'EROFS', 'writes in the filesystem fail with EROFS')
  umount2(mnt, MNT.UMOUNT_NOFOLLOW)
  t.equal(loopDetach(ro.device), 'detached')
})

t.test('argument checks and errors', { skip }, async (t) => {
  const env = setup(t)
  t.throws(() => loopAttach(join(env.dir, 'missing.img')), { code: 'ENOENT', syscall: 'open' })
  t.throws(() => loopAttach(env.image('x.img', MiB), { blockSize: 1000 }), RangeError)
  // ENOTBLK; Node's errno table lacks the name, so test the number.
  t.equal(errOf(() => loopBackingFile('/dev/null'))?.errno, 15)
  t.equal(loopBackingFile('/dev/loop-does-not-exist'), undefined)
  t.equal(loopDetach('/dev/loop-does-not-exist'), 'not-attached')
  t.throws(() => blockDeviceSize('/dev/null'), { code: 'ENOTTY', syscall: 'ioctl BLKGETSIZE64' })
})

t.test('block size and timings', { skip }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 16 * MiB)
  const att = loopAttach(img, { blockSize: 4096 })
  t.equal(readFileSync(`/sys/block/loop${att.number}/queue/logical_block_size`, 'utf8').trim(), '4096')
  loopDetach(att.device)

  const attachMs: number[] = []
  const detachMs: number[] = []
  const backed: string[] = []
  const used = new Set<number>()
  for (let i = 0; i < 20; i++) {
    let t0 = performance.now()
    const a = loopAttach(img)
    attachMs.push(performance.now() - t0)
    used.add(a.number)
    backed.push(readFileSync(`/sys/block/loop${a.number}/loop/backing_file`, 'utf8').trim())
    t0 = performance.now()
    loopDetach(a.device)
    detachMs.push(performance.now() - t0)
  }
  const med = (xs: number[]): string => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(2)
  // Timings are printed for a reader, never asserted: npm run bench owns performance.
  t.comment(`attach median ${med(attachMs)} ms, detach median ${med(detachMs)} ms (20 rounds)`)
  t.same([...new Set(backed)], [img], 'each of the 20 attachments was backed by the image')
  const backing = (n: number): string | undefined => {
    const f = `/sys/block/loop${n}/loop/backing_file`
    return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined
  }
  const still = [...used].filter((n) => backing(n) === img)
  t.same(still, [], 'every attachment was detached again')
})

// The TypeScript loader tap runs us with; children need it to import native/.
const tsLoader = process.execArgv.find((a) => a.includes('@tapjs/typescript'))

t.test('concurrent attaches from several processes get distinct devices', { skip: skip || (!tsLoader && 'no TypeScript loader to run child processes with') }, async (t) => {
  const env = setup(t)
  const procs = 4
  const perProc = 3
  const loopUrl = pathToFileURL(join(import.meta.dirname, '..', 'native', 'loop.ts')).href
  // Each child spins until a common instant, then attaches its images as fast
  // as it can, so all of them race for the same LOOP_CTL_GET_FREE answers.
  const code = `
    const { loopAttach } = await import(${JSON.stringify(loopUrl)})
    const [startAt, files] = [Number(process.argv[1]), JSON.parse(process.argv[2])]
    while (Date.now() < startAt) {}
    const out = files.map((f) => ({ file: f, ...loopAttach(f) }))
    process.stdout.write(JSON.stringify(out))
  `
  const startAt = Date.now() + 1500
  const runs = Array.from({ length: procs }, (_, p) => {
    const files = Array.from({ length: perProc }, (_, i) => env.image(`c${p}-${i}.img`, MiB))
    return new Promise<{ file: string; device: string }[]>((resolve, reject) => {
      const child = spawn(process.execPath, [tsLoader!, '--input-type=module', '-e', code, String(startAt), JSON.stringify(files)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_OPTIONS: '' },
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      child.on('close', (status) => {
        if (status !== 0) reject(new Error(`child ${p} exited ${status}: ${err}`))
        else resolve(JSON.parse(out) as { file: string; device: string }[])
      })
    })
  })
  const all = (await Promise.all(runs)).flat()
  t.equal(all.length, procs * perProc, 'every attach succeeded')
  t.equal(new Set(all.map((a) => a.device)).size, all.length, 'all devices distinct')
  for (const a of all) t.equal(loopBackingFile(a.device), a.file, `${a.device} backs ${a.file}`)
  for (const a of all) t.equal(loopDetach(a.device, { backingFile: a.file }), 'detached')
})

t.test('sparse image stays sparse through attach and mkfs', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const env = setup(t)
  const img = env.image('vol.img', 64 * MiB)
  const att = loopAttach(img)
  mkfs('ext4', att.device, '-q', '-F')
  loopDetach(att.device)
  const allocated = statSync(img).blocks * 512
  t.ok(allocated < 16 * MiB, `64 MiB image allocates ${(allocated / MiB).toFixed(1)} MiB after mkfs.ext4`)
})
