// Loop devices as sysfs shows them: no device is opened and no ioctl made.
//
// /sys/block/loopN/loop/ exists only while loopN is bound. Its backing_file
// holds the backing file's path as seen from the attaching process's root and
// mounts, with " (deleted)" appended once that file is unlinked: text for
// people, not a key. Another process, or the same plugin restarted in a new
// container, may reach the file by another path; loopBackingId (loop.ts)
// tells which file it is.

import { readFileSync, readdirSync } from 'node:fs'
import { ErrnoError, fromNodeError } from './errno.js'
import { statx } from './stat.js'

const LOOP_MAJOR = 7
const ENOENT = 2
const ENXIO = 6
const EINVAL = 22

/**
 * The backing file of a loop device, exactly as /sys reports it (a path as
 * seen from the attaching process's root; " (deleted)" appended if it was
 * unlinked, see parseBackingFile), or undefined if the device is not bound or
 * does not exist. Throws ENOTBLK (errno 15; Node has no name for it) for a
 * non-block file and EINVAL for a block device that is not a loop device.
 */
export function loopBackingFile(device: string): string | undefined {
  let number: number
  try {
    number = loopNumberOf(device)
  } catch (e) {
    if (e instanceof ErrnoError && e.errno === ENOENT) return undefined
    throw e
  }
  return readSysLoop(number, 'backing_file')
}

/** Pure: splits sysfs's backing_file text into the path and its deleted marker. */
export function parseBackingFile(raw: string): { path: string; deleted: boolean } {
  const suffix = ' (deleted)'
  return raw.endsWith(suffix) ? { path: raw.slice(0, -suffix.length), deleted: true } : { path: raw, deleted: false }
}

export interface LoopDevice {
  device: string
  number: number
  /** Raw sysfs text (see loopBackingFile). */
  backingFile: string
  /** The backing file was unlinked after attaching. */
  deleted: boolean
  sizeBytes: bigint
  readOnly: boolean
  autoclear: boolean
  directIo: boolean
}

/**
 * Every bound loop device, from /sys/block/loop* (no device is opened). Meant
 * for start-up reconciliation; O(number of loop devices). Devices that are
 * detached while we scan are skipped.
 */
export function listLoopDevices(): LoopDevice[] {
  const out: LoopDevice[] = []
  for (const name of readdirSync('/sys/block')) {
    const m = /^loop(\d+)$/.exec(name)
    if (m === null) continue
    const number = Number(m[1])
    const raw = readSysLoop(number, 'backing_file')
    if (raw === undefined) continue
    const sectors = readSys(`/sys/block/${name}/size`)
    const { deleted } = parseBackingFile(raw)
    out.push({
      device: `/dev/${name}`,
      number,
      backingFile: raw,
      deleted,
      sizeBytes: sectors === undefined ? 0n : BigInt(sectors) * 512n,
      readOnly: readSys(`/sys/block/${name}/ro`) === '1',
      autoclear: readSysLoop(number, 'autoclear') === '1',
      directIo: readSysLoop(number, 'dio') === '1',
    })
  }
  return out.sort((a, b) => a.number - b.number)
}

/** Loop number of a device node (following symlinks such as /dev/block/7:3). */
export function loopNumberOf(device: string): number {
  const st = statx(device, { follow: true })
  if (st.type !== 'block') throw new ErrnoError(15 /* ENOTBLK */, 'loop', device)
  if (st.rdevMajor !== LOOP_MAJOR) throw new ErrnoError(EINVAL, 'loop', device)
  // The minor is the loop number unless max_part was set on the module.
  const m = /^loop(\d+)$/.exec(blockDeviceName(`${st.rdevMajor}:${st.rdevMinor}`) ?? '')
  return m === null ? st.rdevMinor : Number(m[1])
}

/** The kernel's name ("loop3", "vda1") of the block device "major:minor"; undefined if there is none. */
export function blockDeviceName(devKey: string): string | undefined {
  if (!/^\d+:\d+$/.test(devKey)) return undefined
  const uevent = readSys(`/sys/dev/block/${devKey}/uevent`)
  return uevent === undefined ? undefined : /^DEVNAME=(.+)$/m.exec(uevent)?.[1]
}

export function readSysLoop(number: number, attr: string): string | undefined {
  return readSys(`/sys/block/loop${number}/loop/${attr}`)
}

/** A sysfs attribute without its trailing newline; undefined if absent. */
export function readSys(path: string): string | undefined {
  try {
    const s = readFileSync(path, 'utf8')
    return s.endsWith('\n') ? s.slice(0, -1) : s
  } catch (e) {
    const err = fromNodeError(e, 'open', path)
    if (err.errno === ENOENT || err.errno === ENXIO) return undefined
    throw err
  }
}
