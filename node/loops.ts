// Loop devices at start-up and by device number. A filesystem image's device is autoclear and
// vanishes with its last mount; a block volume's device is detached at unstage. What a node
// plugin killed in between leaves behind is found here, once, at start-up: a loop device backed
// by one of our images that no mount explains is detached.
import { readlinkSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '../common/log.js'
import { listLoopDevices, loopDetach, type MountInfo } from '../native/index.js'
import type { Layout } from './layout.js'

/** "/dev/loopN" for the block device "major:minor", from sysfs; undefined if it is not a loop device. */
export function loopDeviceOf(devKey: string | undefined): string | undefined {
  if (!devKey) return undefined
  try {
    const name = path.basename(readlinkSync(`/sys/dev/block/${devKey}`))
    return /^loop\d+$/.test(name) ? `/dev/${name}` : undefined
  } catch {
    return undefined
  }
}

/** The volume id of an image path under one of our pools' images folders, if it is one. */
export function imageVolumeId(layout: Layout, file: string): string | undefined {
  for (const pool of layout.pools.keys()) {
    const dir = layout.imagesDirOf(pool)
    if (path.dirname(file) !== dir) continue
    const m = /^([ve]-[0-9a-f]{32})\.img$/.exec(path.basename(file))
    if (m) return m[1]
  }
  return undefined
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
  for (const l of listLoopDevices()) {
    const id = imageVolumeId(layout, l.backingFile)
    if (!id) continue
    byDev.set(`7:${l.number}`, id)
    byName.set(`/loop${l.number}`, id)
    bySource.set(l.device, id)
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
  for (const l of listLoopDevices()) {
    if (!imageVolumeId(layout, l.backingFile) || used.has(l.device)) continue
    loopDetach(l.device, { backingFile: l.backingFile })
    log.warn({ device: l.device, backingFile: l.backingFile }, 'detached a loop device no volume mount explains (left by a killed node plugin)')
    out.push(l.device)
  }
  return out
}
