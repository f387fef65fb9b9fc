// Which paths each volume is mounted at on this node. The kernel's mount table is the truth;
// this index mirrors it so the hot path never reads /proc/self/mountinfo (16 ms with 5,000
// mounts). It is rebuilt from one full read at start-up, which is what makes a node plugin
// killed at any instant lose nothing: there is no state of ours that could disagree with the
// kernel. Entries are hints; callers confirm a path with one statx before acting on it.
import path from 'node:path'
import { isId, VOLUME_KINDS } from '../common/ids.js'
import type { MountInfo } from '../native/index.js'

export class MountIndex {
  private readonly byVolume = new Map<string, Set<string>>()
  /** The other way round, so "is any ancestor of this path one of our mounts" is O(depth). */
  private readonly byPoint = new Map<string, string>()

  add(volumeId: string, mountPoint: string): void {
    let set = this.byVolume.get(volumeId)
    if (!set) this.byVolume.set(volumeId, (set = new Set()))
    set.add(mountPoint)
    this.byPoint.set(mountPoint, volumeId)
  }

  remove(volumeId: string, mountPoint: string): void {
    const set = this.byVolume.get(volumeId)
    if (!set) return
    set.delete(mountPoint)
    if (set.size === 0) this.byVolume.delete(volumeId)
    if (this.byPoint.get(mountPoint) === volumeId) this.byPoint.delete(mountPoint)
  }

  /** The nearest proper ancestor of p that is a mount of one of our volumes, if any. */
  mountAbove(p: string): { volumeId: string; mountPoint: string } | undefined {
    for (let dir = path.dirname(p); ; dir = path.dirname(dir)) {
      const volumeId = this.byPoint.get(dir)
      if (volumeId !== undefined) return { volumeId, mountPoint: dir }
      if (dir === '/' || dir === '.') return undefined
    }
  }

  paths(volumeId: string): string[] {
    return [...(this.byVolume.get(volumeId) ?? [])]
  }

  volumes(): string[] {
    return [...this.byVolume.keys()]
  }

  replaceAll(found: Map<string, string[]>): void {
    this.byVolume.clear()
    this.byPoint.clear()
    for (const [id, points] of found) for (const p of points) this.add(id, p)
  }
}

function within(child: string, parent: string): boolean {
  return parent === '/' ? child.startsWith('/') : child === parent || child.startsWith(parent + '/')
}

/**
 * Finds the mounts of our volumes in a mount table. `volumesDir` is the real path of the folder
 * holding volume directories. A bind mount shows the bound directory's path relative to its
 * filesystem in the `root` field, so first translate volumesDir into that form through the
 * mount that contains it, then match every mount of the same device whose root lies under it.
 */
export function volumeMounts(table: MountInfo[], volumesDir: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let host: MountInfo | undefined
  for (const m of table) {
    if (within(volumesDir, m.mountPoint) && (!host || m.mountPoint.length >= host.mountPoint.length)) host = m
  }
  if (!host) return out
  const rest = host.mountPoint === '/' ? volumesDir : volumesDir.slice(host.mountPoint.length)
  const fsRelative = path.posix.join(host.root, rest)
  for (const m of table) {
    if (m === host || m.dev !== host.dev) continue
    // The kernel appends "//deleted" to the root of a mount whose directory was removed.
    const root = m.root.replace(/\/\/deleted$/, '')
    if (!within(root, fsRelative) || root === fsRelative) continue
    const id = root.slice(fsRelative.length + (fsRelative === '/' ? 0 : 1)).split('/')[0] ?? ''
    if (!isId(id, VOLUME_KINDS)) continue
    const list = out.get(id) ?? []
    list.push(m.mountPoint)
    out.set(id, list)
  }
  return out
}
