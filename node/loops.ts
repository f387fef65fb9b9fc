// Loop devices at start-up and by device number. A filesystem image's device is autoclear and
// vanishes with its last mount; a block volume's device is detached at unstage. What a node
// plugin killed in between leaves behind is found here, once, at start-up: a loop device backed
// by one of our images that no mount explains is detached.
//
// A device is ours when its backing file is one of our images: same st_dev and inode. sysfs's
// backing_file text will not do: it is the path as the attaching process saw it, and after our
// container restarts (that process's mounts gone) it no longer reads as our path to the image.
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { idInName, VOLUME_KINDS } from '../common/ids.js'
import type { Logger } from '../common/log.js'
import { blockDeviceName, fromNodeError, listLoopDevices, loopBackingId, loopDetach, type FileId, type MountInfo } from '../native/index.js'
import type { Layout } from './layout.js'
import { inspectPath, sameObject } from './mounter.js'

/** "/dev/loopN" for the block device "major:minor"; undefined if it is not a loop device. */
export function loopDeviceOf(devKey: string | undefined): string | undefined {
  const name = devKey === undefined ? undefined : blockDeviceName(devKey)
  return name !== undefined && /^loop\d+$/.test(name) ? `/dev/${name}` : undefined
}

/** Whether the block device "major:minor" is a loop device backed by `file`. */
export function loopBackedBy(devKey: string | undefined, file: FileId): boolean {
  return backs(loopDeviceOf(devKey), file)
}

/** A loop device backed by `file`, by a scan of them all; undefined when none is. */
export function loopDeviceFor(file: FileId): string | undefined {
  return listLoopDevices().find((l) => backs(l.device, file))?.device
}

function backs(device: string | undefined, file: FileId): boolean {
  const backing = device === undefined ? undefined : loopBackingId(device)
  return backing !== undefined && sameObject(backing, file)
}

interface ImageLoop {
  device: string
  number: number
  volumeId: string
  image: string
}

/** The bound loop devices backed by an image in one of our pools' images folders. */
function imageLoops(layout: Layout): ImageLoop[] {
  const images = new Map<string, { volumeId: string; image: string }>()
  const key = (f: FileId) => `${f.dev}/${f.ino}`
  for (const pool of layout.pools.keys()) {
    const dir = layout.imagesDirOf(pool)
    for (const name of namesIn(dir)) {
      const volumeId = idInName(name, VOLUME_KINDS, '.img')
      if (!volumeId) continue
      const image = path.join(dir, name)
      const st = inspectPath(image)
      if (st?.type === 'file') images.set(key(st), { volumeId, image })
    }
  }
  const out: ImageLoop[] = []
  if (images.size === 0) return out
  for (const l of listLoopDevices()) {
    const backing = loopBackingId(l.device)
    const ours = backing && images.get(key(backing))
    if (ours) out.push({ device: l.device, number: l.number, ...ours })
  }
  return out
}

/**
 * Mounts of image volumes in a mount table: filesystems on our loop devices (and binds of them),
 * and binds of our loop device nodes (block volumes; they show as the devtmpfs file /loopN).
 */
export function imageMounts(table: MountInfo[], layout: Layout): Map<string, string[]> {
  const out = new Map<string, string[]>()
  const byDev = new Map<string, string>()
  const byName = new Map<string, string>()
  const bySource = new Map<string, string>()
  for (const l of imageLoops(layout)) {
    byDev.set(`7:${l.number}`, l.volumeId)
    byName.set(`/loop${l.number}`, l.volumeId)
    bySource.set(l.device, l.volumeId)
  }
  for (const m of table) {
    // By device number (ext4, xfs), by source (btrfs shows an anonymous device number), or a
    // bound loop device node (block volumes).
    const id = byDev.get(m.dev) ?? bySource.get(m.source) ?? (m.fsType === 'devtmpfs' ? byName.get(m.root) : undefined)
    if (!id) continue
    out.set(id, [...(out.get(id) ?? []), m.mountPoint])
  }
  return out
}

/** Detaches loop devices backed by our images that no mount uses; returns what it detached. */
export function detachOrphanLoops(table: MountInfo[], layout: Layout, log: Logger): string[] {
  const used = new Set<string>()
  for (const m of table) {
    if (m.dev.startsWith('7:')) used.add(`/dev/loop${m.dev.slice(2)}`)
    if (/^\/dev\/loop\d+$/.test(m.source)) used.add(m.source)
    if (m.fsType === 'devtmpfs' && /^\/loop\d+$/.test(m.root)) used.add(`/dev${m.root}`)
  }
  const out: string[] = []
  for (const l of imageLoops(layout)) {
    if (used.has(l.device)) continue
    // Guarded by the image's identity again: a device freed and re-used since the scan stays.
    if (loopDetach(l.device, { backingFile: l.image }) === 'not-attached') continue
    log.warn({ device: l.device, backingFile: l.image }, 'detached a loop device no volume mount explains (left by a killed node plugin)')
    out.push(l.device)
  }
  return out
}

function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch (e) {
    const err = fromNodeError(e, 'readdir', dir)
    if (err.code === 'ENOENT') return []
    throw err
  }
}
