// Loop devices through the kernel's ioctls, without losetup(8).
//
// Attaching: /dev/loop-control LOOP_CTL_GET_FREE names a free device (creating
// one if all are bound), then one LOOP_CONFIGURE (Linux 5.8+) binds the
// backing file and sets flags, block size and direct I/O atomically. Two
// processes can be handed the same free number; the loser's LOOP_CONFIGURE
// fails with EBUSY and it simply asks again.
//
// Listing attachments needs no ioctl: see loop-sysfs.ts (listLoopDevices,
// loopBackingFile), re-exported here. Which file backs a device is
// loopBackingId's to say: sysfs's text is a path as the attaching process saw it.
//
// /dev must be devtmpfs (the host's /dev in a pod): a loop device the kernel
// creates on demand gets its node there, and only there.

import { resolve } from 'node:path'
import { ErrnoError } from './errno.js'
import {
  O_CLOEXEC,
  O_NOFOLLOW,
  O_RDONLY,
  O_RDWR,
  closeQuietly,
  closeQuietlyAsync,
  ioc,
  ioctl,
  ioctlAsync,
  openFd,
  withFd,
} from './ioctl.js'
import { checkLayouts, decodeLoopInfo64, encodeLoopConfig, INFO64_SIZE, LO_FLAGS, type LoopStatus } from './loop-structs.js'
import { loopNumberOf, parseBackingFile, readSysLoop } from './loop-sysfs.js'
import { statx, type Statx } from './stat.js'

export { blockDeviceName, listLoopDevices, loopBackingFile, parseBackingFile } from './loop-sysfs.js'
export type { LoopDevice } from './loop-sysfs.js'

const LOOP_CLR_FD = 0x4c01
const LOOP_GET_STATUS64 = 0x4c05
const LOOP_SET_CAPACITY = 0x4c07
const LOOP_CONFIGURE = 0x4c0a
const LOOP_CTL_GET_FREE = 0x4c82
/** _IOR(0x12, 114, size_t) */
const BLKGETSIZE64 = ioc('r', 0x12, 114, 8)

export { LO_FLAGS, decodeLoopInfo64, encodeLoopConfig } from './loop-structs.js'
export type { LoopConfig, LoopStatus } from './loop-structs.js'

export interface LoopAttachOptions {
  readOnly?: boolean
  /**
   * Ask for direct I/O on the backing file (no double caching in the host
   * page cache). Falls back to buffered I/O when the backing filesystem or
   * the block size does not allow it; the result says what was granted.
   */
  directIo?: boolean
  /**
   * LO_FLAGS_AUTOCLEAR: the kernel detaches the device at its last close. We
   * close our own fd before returning, so this only makes sense together with
   * `whileOpen` opening the device for longer (a mount(2) does); it is
   * refused without it, since the device would vanish at once.
   */
  autoclear?: boolean
  /** Logical block size: 512, 1024, 2048 or 4096 (0 or absent: kernel default). */
  blockSize?: number
  /**
   * Runs after LOOP_CONFIGURE while our fd still holds the device open, e.g.
   * to mount it. If it throws, the device is detached again before the error
   * propagates, so a failed setup never leaks a loop device.
   */
  whileOpen?: (att: LoopAttachment) => void
}

export interface LoopAttachment {
  /** "/dev/loopN" */
  device: string
  number: number
  /** Whether the device really does direct I/O (read back from sysfs). */
  directIo: boolean
  readOnly: boolean
  autoclear: boolean
}

const EBUSY = 16
const EINVAL = 22
const ENXIO = 6
const ENOENT = 2
const ATTACH_ATTEMPTS = 8

/**
 * Attaches `backingFile` to a free loop device. The backing file is opened
 * O_NOFOLLOW (a symlink as the final component is refused with ELOOP) and
 * read-only when `readOnly` is set. Every fd opened here is closed before
 * returning, on success and on every failure path.
 *
 * Everything runs on the event loop, LOOP_CONFIGURE included, which can take
 * long (with direct I/O it first writes back the backing file's dirty pages):
 * fine for tools and tests; a server uses loopAttachAsync.
 */
export function loopAttach(backingFile: string, opts: LoopAttachOptions = {}): LoopAttachment {
  const g = attachSteps(backingFile, opts, opts.whileOpen !== undefined)
  for (let r = g.next(); ; ) {
    if (r.done) return r.value
    try {
      if ('configure' in r.value) ioctl(r.value.fd, LOOP_CONFIGURE, 'LOOP_CONFIGURE', r.value.configure, r.value.device)
      else opts.whileOpen!(r.value.whileOpen)
    } catch (e) {
      r = g.throw(e)
      continue
    }
    r = g.next()
  }
}

export interface LoopAttachAsyncOptions extends Omit<LoopAttachOptions, 'whileOpen'> {
  /** As in LoopAttachOptions; may be async (a mount on a worker thread). */
  whileOpen?: (att: LoopAttachment) => void | Promise<void>
}

/**
 * loopAttach with LOOP_CONFIGURE (and whileOpen, if async) off the event loop. The rest (open,
 * LOOP_CTL_GET_FREE, a sysfs read) stays on it: microseconds each, cheaper than a thread hop.
 */
export async function loopAttachAsync(backingFile: string, opts: LoopAttachAsyncOptions = {}): Promise<LoopAttachment> {
  const g = attachSteps(backingFile, opts, opts.whileOpen !== undefined)
  for (let r = g.next(); ; ) {
    if (r.done) return r.value
    try {
      if ('configure' in r.value) await ioctlAsync(r.value.fd, LOOP_CONFIGURE, 'LOOP_CONFIGURE', r.value.configure, r.value.device)
      else await opts.whileOpen!(r.value.whileOpen)
    } catch (e) {
      r = g.throw(e)
      continue
    }
    r = g.next()
  }
}

/**
 * What attaching asks of its caller, one step at a time: the LOOP_CONFIGURE ioctl and the
 * caller's whileOpen. The attach logic (retries, fallbacks, cleanup) is written once, here; the
 * sync and async drivers above only run the steps, and hand a step's failure back through
 * g.throw(), where the logic's own try/catch/finally sees it exactly as a direct call's error.
 */
type AttachStep = { fd: number; configure: Buffer; device: string } | { whileOpen: LoopAttachment }

function* attachSteps(backingFile: string, opts: Omit<LoopAttachOptions, 'whileOpen'>, hasWhileOpen: boolean): Generator<AttachStep, LoopAttachment, void> {
  const blockSize = opts.blockSize ?? 0
  if (blockSize !== 0 && !(blockSize >= 512 && blockSize <= 4096 && (blockSize & (blockSize - 1)) === 0)) {
    throw new RangeError(`loopAttach: block size ${blockSize} is not a power of two in 512..4096`)
  }
  if (opts.autoclear === true && !hasWhileOpen) {
    throw new TypeError('loopAttach: autoclear without whileOpen would detach the device on return')
  }
  checkLayouts()
  let flags = 0
  if (opts.readOnly === true) flags |= LO_FLAGS.READ_ONLY
  if (opts.autoclear === true) flags |= LO_FLAGS.AUTOCLEAR

  const backingFd = openFd(backingFile, (opts.readOnly === true ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC)
  try {
    const ctl = openFd('/dev/loop-control', O_RDWR | O_CLOEXEC)
    try {
      let dio = opts.directIo === true
      for (let attempt = 1; ; attempt++) {
        const number = ioctl(ctl, LOOP_CTL_GET_FREE, 'LOOP_CTL_GET_FREE', 0, '/dev/loop-control')
        const device = `/dev/loop${number}`
        const lfd = openFd(device, O_RDWR | O_CLOEXEC)
        try {
          try {
            const cfg = { backingFd, blockSize, flags: flags | (dio ? LO_FLAGS.DIRECT_IO : 0), fileName: backingFile }
            yield { fd: lfd, configure: encodeLoopConfig(cfg), device }
          } catch (e) {
            // Another process configured this device between GET_FREE and
            // our CONFIGURE: ask for the next free one.
            if (e instanceof ErrnoError && e.errno === EBUSY && attempt < ATTACH_ATTEMPTS) continue
            // Kernels that cannot do direct I/O on this backing file (or with
            // this block size) refuse the whole configure with EINVAL; older
            // ones silently fall back, which sysfs shows below.
            if (e instanceof ErrnoError && e.errno === EINVAL && dio) {
              dio = false
              attempt--
              continue
            }
            throw e
          }
          const att: LoopAttachment = {
            device,
            number,
            directIo: readSysLoop(number, 'dio') === '1',
            readOnly: opts.readOnly === true,
            autoclear: opts.autoclear === true,
          }
          if (hasWhileOpen) {
            try {
              yield { whileOpen: att }
            } catch (e) {
              // Sets autoclear (or detaches now if we are the only opener);
              // the close in `finally` below completes it.
              try {
                ioctl(lfd, LOOP_CLR_FD, 'LOOP_CLR_FD', 0, device)
              } catch {
                /* already detached */
              }
              throw e
            }
          }
          return att
        } finally {
          closeQuietly(lfd)
        }
      }
    } finally {
      closeQuietly(ctl)
    }
  } finally {
    // The device holds its own reference to the backing file.
    closeQuietly(backingFd)
  }
}

export type LoopDetachResult = 'detached' | 'not-attached' | 'deferred'

export interface LoopDetachOptions {
  /**
   * Detach only if the device is still backed by this file (same st_dev and
   * inode, compared through LOOP_GET_STATUS64 on the open device). Guards a
   * stale record of "/dev/loop3 is ours" against detaching a device that was
   * meanwhile freed and re-used by someone else. If the file no longer
   * exists, a device whose sysfs backing_file reads "<this path> (deleted)"
   * counts as backed by it.
   */
  backingFile?: string
}

/**
 * LOOP_CLR_FD. Idempotent: a device that is not bound (ENXIO), or whose node
 * does not exist, is 'not-attached'. While something else still holds the
 * device open (a mounted filesystem) the kernel cannot detach it yet: it sets
 * autoclear instead and detaches at the last close; that is 'deferred'.
 * On the event loop, the detach included: a server uses loopDetachAsync.
 */
export function loopDetach(device: string, opts: LoopDetachOptions = {}): LoopDetachResult {
  const cleared = clearFd(device, opts)
  if (typeof cleared === 'string') return cleared
  closeQuietly(cleared.fd)
  return detachOutcome(cleared.number)
}

/**
 * loopDetach with the last close off the event loop: when we are the device's only opener that
 * close is the detach, which drains the device's queue and writes its cached blocks back (a raw
 * block volume's data a pod wrote through it) before returning.
 */
export async function loopDetachAsync(device: string, opts: LoopDetachOptions = {}): Promise<LoopDetachResult> {
  const cleared = clearFd(device, opts)
  if (typeof cleared === 'string') return cleared
  await closeQuietlyAsync(cleared.fd)
  return detachOutcome(cleared.number)
}

/** Opens the device and asks for the detach; the caller closes the fd it returns. */
function clearFd(device: string, opts: LoopDetachOptions): { fd: number; number: number } | 'not-attached' {
  let lfd: number
  try {
    lfd = openFd(device, O_RDONLY | O_CLOEXEC)
  } catch (e) {
    if (e instanceof ErrnoError && (e.errno === ENOENT || e.errno === ENXIO)) return 'not-attached'
    throw e
  }
  try {
    if (opts.backingFile !== undefined && !backedBy(lfd, device, opts.backingFile)) throw NOT_ATTACHED
    try {
      ioctl(lfd, LOOP_CLR_FD, 'LOOP_CLR_FD', 0, device)
    } catch (e) {
      if (e instanceof ErrnoError && e.errno === ENXIO) throw NOT_ATTACHED
      throw e
    }
    return { fd: lfd, number: loopNumberOf(device) }
  } catch (e) {
    closeQuietly(lfd)
    if (e === NOT_ATTACHED) return 'not-attached'
    throw e
  }
}

const NOT_ATTACHED = Symbol('not attached')

function detachOutcome(number: number): LoopDetachResult {
  return readSysLoop(number, 'backing_file') === undefined ? 'detached' : 'deferred'
}

/**
 * Whether the open loop device is bound to `file`: same st_dev and inode. If
 * `file` is gone (unlinked before the detach), sysfs naming it with the
 * " (deleted)" marker is the best evidence left, and accepted.
 */
function backedBy(lfd: number, device: string, file: string): boolean {
  let st: LoopStatus
  try {
    st = loopStatusFd(lfd, device)
  } catch (e) {
    if (e instanceof ErrnoError && e.errno === ENXIO) return false
    throw e
  }
  let want: { dev: string; ino: bigint }
  try {
    want = statx(file, { follow: true })
  } catch (e) {
    if (!(e instanceof ErrnoError && e.errno === ENOENT)) throw e
    const raw = readSysLoop(st.number, 'backing_file')
    if (raw === undefined) return false
    const b = parseBackingFile(raw)
    return b.deleted && b.path === resolve(file)
  }
  return st.backingDev === want.dev && st.backingIno === want.ino
}

/** LOOP_SET_CAPACITY: re-reads the backing file's size after it grew. */
export function loopSetCapacity(device: string): void {
  withFd(device, O_RDONLY | O_CLOEXEC, (fd) => {
    ioctl(fd, LOOP_SET_CAPACITY, 'LOOP_SET_CAPACITY', 0, device)
  })
}

/** LOOP_GET_STATUS64; throws ENXIO when the device is not bound. */
export function loopStatus(device: string): LoopStatus {
  return withFd(device, O_RDONLY | O_CLOEXEC, (fd) => loopStatusFd(fd, device))
}

/** Which file: its filesystem's st_dev ("major:minor", as in Statx) and its inode. */
export type FileId = Pick<Statx, 'dev' | 'ino'>

/**
 * The file a loop device is bound to, as the kernel holds it (LOOP_GET_STATUS64): equal dev and
 * ino to a statx of a path mean the device is backed by that file. This, not sysfs's
 * backing_file, is how to recognise a device: that text is the path as the attaching process
 * saw it (from its root, through its mounts), so the same file reads differently once that
 * process's mounts are gone (a restarted container) or through another view of it (a bind
 * mount, a symlinked data root), and a file deleted and made again under its name reads alike
 * though it is another. An image unlinked while attached keeps its identity here. undefined when
 * the device is not bound or has no node.
 */
export function loopBackingId(device: string): FileId | undefined {
  let st: LoopStatus
  try {
    st = loopStatus(device)
  } catch (e) {
    if (e instanceof ErrnoError && (e.errno === ENXIO || e.errno === ENOENT)) return undefined
    throw e
  }
  return { dev: st.backingDev, ino: st.backingIno }
}

function loopStatusFd(fd: number, device: string): LoopStatus {
  checkLayouts()
  const b = Buffer.alloc(INFO64_SIZE)
  ioctl(fd, LOOP_GET_STATUS64, 'LOOP_GET_STATUS64', b, device)
  return decodeLoopInfo64(b)
}

/** BLKGETSIZE64: size of any block device in bytes. */
export function blockDeviceSize(device: string): bigint {
  const b = Buffer.alloc(8)
  withFd(device, O_RDONLY | O_CLOEXEC, (fd) => {
    ioctl(fd, BLKGETSIZE64, 'BLKGETSIZE64', b, device)
  })
  return b.readBigUInt64LE(0)
}

/** For tests: verifies the hard-coded struct layouts against koffi (needs koffi, not root). */
export { checkLayouts as checkLoopLayouts }
