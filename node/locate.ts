// Finding a volume's data on this node and proving that a mount belongs to it, from the disk
// and the kernel alone (no volume context, no store), each in a few O(1) syscalls.
import { DEFAULT_POOL, type VolumeKind } from '../common/store/model.js'
import { failedPrecondition, notFound } from '../common/errors.js'
import type { NodeDeps } from './deps.js'
import { loopBackedBy } from './loops.js'
import { sameObject, type PathInfo } from './mounter.js'

export interface Located {
  id: string
  kind: VolumeKind
  /** The directory (dir), the image file (image), or the note of the staged mount (nfs). */
  path: string
  info: PathInfo
  pool: string
}

/** The volume's data on this node, in any pool; undefined when it has none. */
export function findVolume(d: NodeDeps, id: string): Located | undefined {
  for (const pool of d.layout.pools.keys()) {
    const dir = d.layout.volumeDir(id, pool)
    const di = d.mounter.inspect(dir)
    if (di) {
      if (di.type !== 'dir') throw failedPrecondition(`volume ${id}: ${dir} is not a directory; refusing to use it`)
      return { id, kind: 'dir', path: dir, info: di, pool }
    }
    const img = d.layout.imagePath(id, pool)
    const ii = d.mounter.inspect(img)
    if (ii) {
      if (ii.type !== 'file') throw failedPrecondition(`volume ${id}: ${img} is not a regular file; refusing to use it`)
      return { id, kind: 'image', path: img, info: ii, pool }
    }
  }
  // An nfs volume has no data here, only the note of what NodeStageVolume mounted (node/nfs.ts).
  const note = d.layout.nfsNoteOf(id)
  const ni = d.mounter.inspect(note)
  if (ni?.type === 'file') return { id, kind: 'nfs', path: note, info: ni, pool: DEFAULT_POOL }
  return undefined
}

export function locate(d: NodeDeps, id: string): Located {
  const v = findVolume(d, id)
  if (!v) throw notFound(`volume ${id} does not exist on node ${d.nodeId}`)
  return v
}

/**
 * Whether what is at path (a mount root, or a bound device node) shows this volume: a dir
 * volume's bind shares its directory's inode; an image's filesystem sits on a loop device, and a
 * block volume's node is a loop device, whose backing file is the volume's image (the same
 * file, not the same path text: see loops.ts). btrfs reports an anonymous device number instead
 * of the loop device's, so for it the mount index (which knows each mount's source from
 * mountinfo at start-up and from our own mounts since) decides.
 */
export function belongsTo(d: NodeDeps, vol: Located, info: PathInfo, path: string): boolean {
  if (vol.kind === 'dir') return sameObject(info, vol.info)
  // An NFS mount shows the server's inode on an anonymous device: nothing on this node to compare
  // with. The index decides, which knows the volume's mounts by their source (nfsMounts) and
  // NodeStageVolume's own; only root can make a mount root appear at a path.
  if (vol.kind === 'nfs') return info.isMountRoot && d.index.paths(vol.id).includes(path)
  if (info.type === 'block') return loopBackedBy(info.rdev, vol.info)
  if (loopBackedBy(info.dev, vol.info)) return true
  return info.isMountRoot && info.dev.startsWith('0:') && d.index.paths(vol.id).includes(path)
}

/** Where a block volume's device node is bound inside its staging directory. */
export function blockStagingFile(staging: string): string {
  return `${staging}/device`
}

/**
 * What NodePublishVolume binds from, once it is proven that the volume is staged at staging:
 * the staging directory itself (dir and filesystem images) or the device node in it (block).
 */
export function stagedSource(d: NodeDeps, vol: Located, staging: string, block: boolean): { source: string; info: PathInfo } | undefined {
  const source = block ? blockStagingFile(staging) : staging
  const info = d.mounter.inspect(source)
  if (!info?.isMountRoot || !belongsTo(d, vol, info, source)) return undefined
  return { source, info }
}
