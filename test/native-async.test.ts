// The native calls that run on a worker thread (koffi's .async): each failure still carries the
// errno of its own call, read on the thread that made it, even when several are in flight at
// once and the event loop makes failing calls of its own meanwhile; and a call that blocks in
// the kernel leaves the event loop running. Root-only parts are skipped with their reason.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import {
  allocate, ErrnoError, freeze, freezeAsync, listLoopDevices, loopAttachAsync, loopDetachAsync, MNT, MS, mount, mountAsync, statx, thaw, umount2Async,
} from '../native/index.js'
import { loopRig } from './helpers/loopfs.js'

const root = process.getuid?.() === 0
const skip = process.platform !== 'linux' ? 'needs Linux' : !root ? 'mounts, loop devices and freezes need root' : false
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0
const codeOf = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(() => undefined, (e: unknown) => (e instanceof ErrnoError ? e.code : `not an ErrnoError: ${String(e)}`))
const syncCode = (fn: () => unknown): string | undefined => {
  try {
    fn()
    return undefined
  } catch (e) {
    return e instanceof ErrnoError ? e.code : String(e)
  }
}

t.test('fallocate on a worker thread reports its own errno', async (t) => {
  const dir = t.testdir({ f: '' })
  const fd = openSync(path.join(dir, 'f'), 'r')
  t.teardown(() => closeSync(fd))
  // A read-only fd: the kernel answers EBADF, which must come back from the worker's errno.
  t.equal(await codeOf(allocate(fd, 0, 4096)), 'EBADF', 'fallocate on a read-only fd: EBADF')
  const w = openSync(path.join(dir, 'f'), 'r+')
  t.teardown(() => closeSync(w))
  await allocate(w, 0, 1 << 20)
  t.equal(statx(path.join(dir, 'f')).size, BigInt(1 << 20), 'a successful fallocate extends the file')
})

t.test('async mount and umount2: each failure carries its own errno, whatever else runs', { skip }, async (t) => {
  const { dir, mounts } = loopRig(t)
  const src = path.join(dir, 'src')
  const dst = path.join(dir, 'dst')
  mkdirSync(src)
  mkdirSync(dst)
  writeFileSync(path.join(src, 'hello'), 'hi')
  // Three different failures in flight on worker threads at once, and a failing call on the
  // event loop while they run: none may see another's errno.
  const pending = [
    codeOf(mountAsync(src, path.join(dir, 'missing'), null, MS.BIND, null)),
    codeOf(mountAsync('none', dst, 'no-such-fs-type', 0, null)),
    codeOf(umount2Async(dst, MNT.UMOUNT_NOFOLLOW)),
    codeOf(mountAsync(path.join(dir, 'src', 'hello'), dst, null, MS.BIND, null)),
  ]
  t.equal(syncCode(() => mount(src, path.join(dir, 'nope'), null, MS.BIND, null)), 'ENOENT', 'a sync failure meanwhile: ENOENT')
  t.same(await Promise.all(pending), ['ENOENT', 'ENODEV', 'EINVAL', 'ENOTDIR'], 'ENOENT (no target), ENODEV (no such fs type), EINVAL (not a mount), ENOTDIR (file onto dir)')
  await mountAsync(src, dst, null, MS.BIND, null)
  mounts.push(dst)
  t.ok(statx(dst).isMountRoot, 'a successful async bind mount is there')
  await umount2Async(dst, MNT.UMOUNT_NOFOLLOW)
  t.notOk(statx(dst).isMountRoot, 'and gone after an async umount2')
})

t.test('freezeAsync: EBUSY from the worker when frozen already; thaw releases it', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const { dir, mounts } = loopRig(t)
  const img = path.join(dir, 'fs.img')
  writeFileSync(img, '')
  closeSync(openSync(img, 'r+'))
  spawnSync('truncate', ['-s', '32M', img])
  t.equal(spawnSync('mkfs.ext4', ['-q', '-F', img]).status, 0, 'mkfs.ext4')
  const mp = path.join(dir, 'mnt')
  mkdirSync(mp)
  await loopAttachAsync(img, { autoclear: true, whileOpen: (a) => mountAsync(a.device, mp, 'ext4', 0, null) })
  mounts.push(mp)
  await freezeAsync(mp)
  t.teardown(() => { try { thaw(mp) } catch { /* thawed */ } })
  t.equal(await codeOf(freezeAsync(mp)), 'EBUSY', 'a second freeze: EBUSY, read from the worker thread')
  thaw(mp)
  t.equal(syncCode(() => freeze(mp)), undefined, 'thawed: a new (sync) freeze is accepted')
  thaw(mp)
})

t.test('loopAttachAsync: a failing async whileOpen detaches the device again', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const { dir } = loopRig(t)
  const img = path.join(dir, 'fs.img')
  spawnSync('truncate', ['-s', '32M', img])
  t.equal(spawnSync('mkfs.ext4', ['-q', '-F', img]).status, 0, 'mkfs.ext4')
  const mp = path.join(dir, 'mnt')
  mkdirSync(mp)
  const err = await loopAttachAsync(img, { autoclear: true, directIo: true, whileOpen: (a) => mountAsync(a.device, mp, 'xfs', 0, null) }).catch((e: unknown) => e)
  t.ok(err instanceof ErrnoError && err.syscall === 'mount', `the mount's own error comes back (${String(err)})`)
  t.same(listLoopDevices().filter((l) => l.backingFile === img), [], 'no loop device is left backed by the image')
})

t.test('loopDetachAsync: detached, not-attached and deferred, as loopDetach says them', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') }, async (t) => {
  const { dir, mounts } = loopRig(t)
  const img = path.join(dir, 'fs.img')
  spawnSync('truncate', ['-s', '32M', img])
  t.equal(spawnSync('mkfs.ext4', ['-q', '-F', img]).status, 0, 'mkfs.ext4')
  const other = path.join(dir, 'other.img')
  spawnSync('truncate', ['-s', '1M', other])
  const a = await loopAttachAsync(img, { directIo: true })
  t.equal(await loopDetachAsync(a.device, { backingFile: other }), 'not-attached', 'backed by another file: left alone')
  t.equal(await loopDetachAsync(a.device, { backingFile: img }), 'detached', 'ours: detached by the close on the worker')
  t.equal(await loopDetachAsync(a.device, { backingFile: img }), 'not-attached', 'again: nothing to do')
  const mp = path.join(dir, 'mnt')
  mkdirSync(mp)
  const b = await loopAttachAsync(img, { whileOpen: (x) => mountAsync(x.device, mp, 'ext4', 0, null) })
  mounts.push(mp)
  t.equal(await loopDetachAsync(b.device), 'deferred', 'mounted: deferred to the last unmount')
  await umount2Async(mp, MNT.UMOUNT_NOFOLLOW)
  t.same(listLoopDevices().filter((l) => l.backingFile === img), [], 'gone with the unmount')
})

t.test('a mount blocked in the kernel leaves the event loop running', { skip: skip || (!hasMkfs('ext4') && 'mkfs.ext4 missing') || (!hasMkfs('xfs') && 'mkfs.xfs missing') }, async (t) => {
  // The image lives on a filesystem the test freezes: ext4's mount writes its superblock
  // through the loop device, and that write waits in the kernel until the thaw.
  const { dir, mounts } = loopRig(t)
  const outer = path.join(dir, 'outer.img')
  spawnSync('truncate', ['-s', '320M', outer])
  t.equal(spawnSync('mkfs.xfs', ['-q', outer]).status, 0, 'mkfs.xfs')
  const store = path.join(dir, 'store')
  mkdirSync(store)
  await loopAttachAsync(outer, { autoclear: true, whileOpen: (a) => mountAsync(a.device, store, 'xfs', 0, null) })
  mounts.push(store)
  const img = path.join(store, 'vol.img')
  spawnSync('truncate', ['-s', '64M', img])
  t.equal(spawnSync('mkfs.ext4', ['-q', '-F', img]).status, 0, 'mkfs.ext4 of the inner image')
  const mp = path.join(dir, 'mnt')
  mkdirSync(mp)
  freeze(store)
  let thawed = false
  const thawOnce = (): void => {
    if (!thawed) thaw(store)
    thawed = true
  }
  t.teardown(thawOnce)
  process.once('exit', thawOnce)
  // If the mount ran on this thread after all, this process would wait in the kernel for a thaw
  // only it could do: a separate process thaws after a minute, and the order asserted below
  // then fails instead of hanging (and the filesystem does not stay frozen).
  const watchdog = spawn('sh', ['-c', 'sleep 60 && exec xfs_freeze -u "$0"', store], { stdio: 'ignore', detached: true })
  watchdog.unref()
  t.teardown(() => { try { process.kill(-watchdog.pid!) } catch { /* gone */ } })
  let done = false
  const mounting = loopAttachAsync(img, { autoclear: true, whileOpen: (a) => mountAsync(a.device, mp, 'ext4', 0, null) }).then(
    () => { done = true },
    (e: unknown) => { done = true; throw e },
  )
  mounting.catch(() => undefined) // awaited below; a failure must not end the process before the thaw
  mounts.push(mp)
  // The loop device exists once LOOP_CONFIGURE is through: the mount is in the kernel now. These
  // polls run on the event loop the mount would hold if it ran on it.
  while (!listLoopDevices().some((l) => l.backingFile === img) && !done) await new Promise((r) => setTimeout(r, 10))
  let ticks = 0
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5)).then(() => ticks++)
  t.equal(done, false, 'the mount has not returned while the backing filesystem is frozen')
  t.equal(ticks, 20, 'timers fired on the event loop meanwhile')
  thawOnce()
  await mounting
  t.ok(statx(mp).isMountRoot, 'after the thaw the mount completes')
})
