// loopBackingId: which file backs a loop device, as the kernel holds it (LOOP_GET_STATUS64),
// against what sysfs's backing_file prints, which is the path as the attaching process saw it.
// Root only: real loop devices, bind mounts and filesystems.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isErrno, loopAttach, loopBackingFile, loopBackingId, loopDetach, MNT, MS, mount, statx, umount2 } from '../native/index.js'
import { closeQuietly, ioctl, O_CLOEXEC, O_RDWR, openFd } from '../native/ioctl.js'
import { encodeLoopConfig } from '../native/loop.js'
import { detachLoopsBacking, loopRig, unmountQuietly } from './helpers/loopfs.js'

const MiB = 1 << 20
const skip = process.getuid?.() !== 0 ? 'loop devices need root' : !existsSync('/dev/loop-control') ? 'no /dev/loop-control here' : false
const idOf = (file: string) => {
  const st = statx(file)
  return { dev: st.dev, ino: st.ino }
}

function image(file: string, bytes: number): string {
  writeFileSync(file, '')
  truncateSync(file, bytes)
  return file
}

t.test('the same file through a view that is gone: sysfs names it differently, its identity is the same', { skip }, async (t) => {
  const { dir } = loopRig(t)
  mkdirSync(join(dir, 'files'))
  const file = image(join(dir, 'files', 'vol.img'), MiB)
  const other = image(join(dir, 'files', 'other.img'), MiB)
  const view = join(dir, 'view')
  mkdirSync(view)
  mount(join(dir, 'files'), view, null, MS.BIND, null)
  const att = loopAttach(join(view, 'vol.img'))
  t.teardown(() => detachLoopsBacking([idOf(file)]))
  umount2(view, MNT.DETACH)
  t.equal(loopBackingFile(att.device), '/vol.img', 'sysfs prints the path inside the detached view')
  t.same(loopBackingId(att.device), idOf(file), 'the identity is the file\'s')
  t.notSame(loopBackingId(att.device), idOf(other), 'and not another file\'s')
  t.equal(loopDetach(att.device, { backingFile: other }), 'not-attached', 'a guarded detach naming another file leaves it')
  t.equal(loopDetach(att.device, { backingFile: file }), 'detached', 'one naming this file, by any path, detaches it')
  t.equal(loopBackingId(att.device), undefined, 'a device that is not bound has none')
  t.equal(loopBackingId('/dev/loop-does-not-exist'), undefined, 'nor has a missing node')
})

t.test('an image unlinked while attached keeps its identity', { skip }, async (t) => {
  const { dir } = loopRig(t)
  const file = image(join(dir, 'vol.img'), MiB)
  const id = idOf(file)
  const att = loopAttach(file)
  t.teardown(() => detachLoopsBacking([id]))
  unlinkSync(file)
  image(file, MiB)
  t.equal(loopBackingFile(att.device), `${file} (deleted)`, 'sysfs marks it deleted')
  t.same(loopBackingId(att.device), id, 'the unlinked file\'s dev and inode')
  t.notSame(loopBackingId(att.device), idOf(file), 'not those of the new file under its name')
})

// lo_device is huge_encode_dev(st_dev): the minor's low byte, the major, then the minor's other
// bits from bit 20. A minor below 256 would read right even if the upper bits were decoded
// wrongly, so the image here lives on a filesystem on /dev/loop4660 (minor 0x1234).
const hasExt4 = spawnSync('sh', ['-c', 'command -v mkfs.ext4']).status === 0
t.test('lo_device decodes to statx\'s st_dev for a device whose minor needs more than 8 bits', { skip: skip || (!hasExt4 && 'mkfs.ext4 missing') }, async (t) => {
  const { dir } = loopRig(t)
  const LOOP_CTL_ADD = 0x4c80
  const LOOP_CTL_REMOVE = 0x4c81
  const LOOP_CONFIGURE = 0x4c0a
  const ctl = openFd('/dev/loop-control', O_RDWR | O_CLOEXEC)
  t.teardown(() => closeQuietly(ctl))
  let n = 0x1234
  for (;; n++) {
    try {
      ioctl(ctl, LOOP_CTL_ADD, 'LOOP_CTL_ADD', n, '/dev/loop-control')
      break
    } catch (e) {
      if (!isErrno(e, 'EEXIST') || n > 0x1234 + 64) throw e
    }
  }
  const big = `/dev/loop${n}`
  const outer = image(join(dir, 'outer.img'), 16 * MiB)
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const inner = join(mnt, 'inner.img')
  let innerId: { dev: string; ino: bigint } | undefined
  t.teardown(() => {
    if (innerId) detachLoopsBacking([innerId])
    unmountQuietly(mnt)
    detachLoopsBacking([idOf(outer)])
    try {
      ioctl(ctl, LOOP_CTL_REMOVE, 'LOOP_CTL_REMOVE', n, '/dev/loop-control')
    } catch (e) {
      console.error(`teardown: could not remove ${big}: ${String(e)}`)
    }
  })
  const backing = openFd(outer, O_RDWR | O_CLOEXEC)
  const lfd = openFd(big, O_RDWR | O_CLOEXEC)
  try {
    ioctl(lfd, LOOP_CONFIGURE, 'LOOP_CONFIGURE', encodeLoopConfig({ backingFd: backing, blockSize: 0, flags: 0, fileName: outer }), big)
  } finally {
    closeQuietly(lfd)
    closeQuietly(backing)
  }
  const mk = spawnSync('mkfs.ext4', ['-q', '-F', big], { encoding: 'utf8' })
  t.equal(mk.status, 0, `mkfs.ext4 ${big} ${mk.stderr}`)
  mount(big, mnt, 'ext4', 0, null)
  image(inner, MiB)
  innerId = idOf(inner)
  const minor = statx(big).rdevMinor
  t.ok(minor > 255, `${big} has minor ${minor}`)
  t.equal(innerId.dev, `7:${minor}`, 'the inner image\'s st_dev is that device')
  const att = loopAttach(inner)
  t.same(loopBackingId(att.device), innerId, 'LOOP_GET_STATUS64 gives the same dev and inode')
})
