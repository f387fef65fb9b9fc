// The node's side of snapshots, restores and clones: copying a volume's data into a snapshot,
// and a snapshot's (or another volume's) data into a new volume. Copies are reflinks where the
// filesystem can (xfs with reflink, btrfs), else sparse-preserving copies that keep metadata.
// Every copy is built under a temporary name and renamed into place when complete, so a node
// plugin killed mid-copy never leaves a half copy that looks finished; the copy simply starts
// again. A mounted image is frozen (FIFREEZE) around its copy, so the copy is crash-consistent.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { aborted, failedPrecondition } from '../common/errors.js'
import type { SnapshotObject, VolumeObject } from '../common/store/types.js'
import { syncDir } from '../common/store/atomic.js'
import { freeze, thaw, withFrozenAsync } from '../native/index.js'
import { copyImage, copyTree } from './copy.js'
import { removeVolumeDir } from './datadir.js'
import type { NodeDeps } from './deps.js'
import { growFs } from './fstools.js'
import { findVolume, type Located } from './locate.js'

/** A mount root of a volume's filesystem on this node (to freeze around a copy), if mounted. */
function fsMountOf(d: NodeDeps, vol: Located): string | undefined {
  if (vol.kind !== 'image') return undefined
  return d.index.paths(vol.id).find((p) => {
    const i = d.mounter.inspect(p)
    return i?.isMountRoot && i.type === 'dir'
  })
}

/** Copies a volume's data (dir tree or image) to dst, freezing a mounted image meanwhile. */
async function copyVolumeData(d: NodeDeps, vol: Located, dst: string): Promise<void> {
  if (vol.kind === 'dir') {
    await copyTree(vol.path, dst)
    return
  }
  const mp = fsMountOf(d, vol)
  if (mp) await withFrozenAsync(mp, () => copyImage(vol.path, dst))
  else await copyImage(vol.path, dst)
}

/** Builds final from a copy made at a temporary name beside it; removes a stale temp first. */
async function buildAtomically(final: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(final), `.${path.basename(final)}.tmp`)
  await fsp.mkdir(path.dirname(final), { recursive: true, mode: 0o700 })
  await removeAny(tmp)
  try {
    await make(tmp)
    // The copy engine does not sync; an image must be on disk before it is called done. (A
    // tree's files are not synced one by one: that would cost more than the copy itself.)
    if ((await fsp.lstat(tmp)).isFile()) {
      const fh = await fsp.open(tmp, 'r+')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
    await fsp.rename(tmp, final)
    await syncDir(path.dirname(final))
  } catch (e) {
    await removeAny(tmp)
    throw e
  }
}

async function removeAny(p: string): Promise<void> {
  const st = await fsp.lstat(p).catch(() => undefined)
  if (!st) return
  if (st.isDirectory()) await removeVolumeDir(p)
  else await fsp.rm(p, { force: true })
}

/**
 * Takes snapshots together (a group snapshot's members, or one): every mounted image filesystem
 * among the sources is frozen first, then each is copied, then all are thawed, so the set is
 * consistent with itself. Members already copied before a restart are left as they are.
 */
export async function takeSnapshots(d: NodeDeps, snaps: SnapshotObject[]): Promise<void> {
  const work: { snap: SnapshotObject; vol: Located; final: string }[] = []
  for (const snap of snaps) {
    const vol = findVolume(d, snap.spec.sourceVolumeId)
    if (!vol) throw failedPrecondition(`the data of volume ${snap.spec.sourceVolumeId} is not on node ${d.nodeId}`)
    const final = d.layout.snapshotPath(snap.id, snap.spec.pool, snap.spec.kind)
    if (!(await fsp.lstat(final).catch(() => undefined))) work.push({ snap, vol, final })
  }
  const mounts = [...new Set(work.map((w) => fsMountOf(d, w.vol)).filter((m): m is string => m !== undefined))]
  const frozen: string[] = []
  try {
    for (const mp of mounts) {
      freeze(mp)
      frozen.push(mp)
    }
    for (const w of work) {
      await buildAtomically(w.final, (tmp) => (w.vol.kind === 'dir' ? copyTree(w.vol.path, tmp) : copyImage(w.vol.path, tmp)).then(() => undefined))
    }
  } finally {
    // A frozen filesystem must never stay frozen: writers in the pod would hang.
    for (const mp of frozen.reverse()) thaw(mp)
  }
}

export async function removeSnapshot(d: NodeDeps, snap: SnapshotObject): Promise<void> {
  const final = d.layout.snapshotPath(snap.id, snap.spec.pool, snap.spec.kind)
  await removeAny(path.join(path.dirname(final), `.${path.basename(final)}.tmp`))
  await removeAny(final)
}

/**
 * Makes a restored or cloned volume's data. `snapshotReady` is the store's word on the source
 * snapshot; an image bigger than its source is grown, and an ext4 in it is resized offline (xfs
 * and btrfs grow online at the first NodeStageVolume).
 */
export async function fillFromSource(d: NodeDeps, vol: VolumeObject, snapshot: SnapshotObject | undefined): Promise<void> {
  const src = vol.spec.contentSource!
  const image = vol.spec.kind === 'image'
  const final = image ? d.layout.imagePath(vol.id, vol.spec.pool) : d.layout.volumeDir(vol.id, vol.spec.pool)
  if (await fsp.lstat(final).catch(() => undefined)) return
  await buildAtomically(final, async (tmp) => {
    if ('snapshotId' in src) {
      if (!snapshot) throw failedPrecondition(`snapshot ${src.snapshotId} does not exist`)
      if (snapshot.status?.phase !== 'Ready') throw aborted(`snapshot ${src.snapshotId} is still being copied; retry`)
      const from = d.layout.snapshotPath(snapshot.id, snapshot.spec.pool, snapshot.spec.kind)
      if (image) await copyImage(from, tmp)
      else await copyTree(from, tmp)
    } else {
      const from = findVolume(d, src.volumeId)
      if (!from) throw failedPrecondition(`the data of volume ${src.volumeId} is not on node ${d.nodeId}`)
      await copyVolumeData(d, from, tmp)
    }
    if (image) {
      const size = BigInt(vol.spec.capacityBytes)
      if (BigInt((await fsp.stat(tmp)).size) < size) {
        await fsp.truncate(tmp, Number(size))
        if (vol.spec.fsType === 'ext4') await growFs('ext4-offline', tmp, '')
      }
    } else {
      await fsp.chmod(tmp, 0o777)
    }
  })
}
