// The node's side of snapshots, restores and clones: copying a volume's data into a snapshot,
// and a snapshot's (or another volume's) data into a new volume. Copies are reflinks where the
// filesystem can (xfs with reflink, btrfs), else sparse-preserving copies that keep metadata.
// Every copy is built under a temporary name and renamed into place when complete, so a node
// plugin killed mid-copy never leaves a half copy that looks finished; the copy simply starts
// again. A mounted image is frozen (FIFREEZE) around its copy, so the copy is crash-consistent;
// a freeze that a node plugin killed mid-copy left behind is taken over and thawed by the copy's
// restart (or by the deletion of the snapshot), so the pod's writers do not hang for good.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { aborted, exhausted, failedPrecondition } from '../common/errors.js'
import type { SnapshotObject, VolumeObject } from '../common/store/types.js'
import { syncDir } from '../common/store/atomic.js'
import { freezeAsync, isErrno, thaw } from '../native/index.js'
import { copyImage, copyTree } from './copy.js'
import { mkdirs, removeVolumeDir } from './datadir.js'
import type { NodeDeps } from './deps.js'
import { growFs } from './fstools.js'
import { stopped } from './abort.js'
import { findVolume, type Located } from './locate.js'

/** A mount root of a volume's filesystem on this node (to freeze around a copy), if mounted. */
function fsMountOf(d: NodeDeps, vol: Located): string | undefined {
  if (vol.kind !== 'image') return undefined
  return d.index.paths(vol.id).find((p) => {
    const i = d.mounter.inspect(p)
    return i?.isMountRoot && i.type === 'dir'
  })
}

/**
 * Filesystems (by device) this process has frozen for a copy, or is probing for a leftover
 * freeze, and not yet thawed. tscsi freezes nothing else, so a volume's filesystem that is
 * frozen but not in here was frozen by a node plugin killed mid-copy: no one else would ever
 * thaw it, and the pod's writers would hang. A key goes in before its freeze is awaited (FIFREEZE
 * flushes the filesystem on a worker thread, and other work runs meanwhile), so two freezes of
 * this process never overlap on one filesystem: a probe's EBUSY is never a copy's freeze it
 * would then thaw, and a copy never adopts a probe's freeze as a killed predecessor's.
 */
const frozenHere = new Set<string>()

/**
 * Freezes the filesystem at mp for a copy and returns the key to thaw it with. One already
 * frozen by a killed predecessor (EBUSY, and not ours) is adopted: the copy goes on, consistent,
 * and thawCopy() releases it. One frozen (or being probed) by this process is ABORTED (retried).
 */
async function freezeForCopy(d: NodeDeps, mp: string): Promise<string> {
  const key = d.mounter.inspect(mp)?.dev ?? mp
  if (frozenHere.has(key)) throw aborted(`the filesystem at ${mp} is frozen for another copy; retry`)
  frozenHere.add(key)
  try {
    await freezeAsync(mp)
  } catch (e) {
    if (!isErrno(e, 'EBUSY')) {
      frozenHere.delete(key)
      throw e
    }
    d.log.warn({ mountPoint: mp }, 'a filesystem was left frozen by a node plugin killed mid-copy; this copy takes it over and thaws it')
  }
  return key
}

function thawCopy(mp: string, key: string): void {
  try {
    thaw(mp)
  } finally {
    frozenHere.delete(key)
  }
}

/**
 * Undoes a freeze a killed predecessor left on the filesystem at mp, unless a copy of this
 * process holds it (then ABORTED, if `busy` names what to retry after, else nothing happens).
 * The probe takes a freeze of its own (EBUSY means frozen already) and thaws. A filesystem that
 * cannot be frozen at all is left as it is when `strict` is false, else the error is thrown.
 */
async function thawIfLeftFrozen(d: NodeDeps, mp: string, what: Record<string, string>, busy: string | undefined, strict: boolean): Promise<void> {
  const key = d.mounter.inspect(mp)?.dev ?? mp
  if (frozenHere.has(key)) {
    if (busy) throw aborted(busy)
    return
  }
  frozenHere.add(key)
  try {
    try {
      await freezeAsync(mp)
    } catch (e) {
      if (!isErrno(e, 'EBUSY')) {
        if (strict) throw e
        return
      }
      d.log.warn({ mountPoint: mp, ...what }, 'thawing a filesystem left frozen by a node plugin killed mid-copy')
    }
    thaw(mp)
  } finally {
    frozenHere.delete(key)
  }
}

/** Thaws the filesystem of a volume if a copy cut short by a kill left it frozen. */
async function thawLeftover(d: NodeDeps, volumeId: string): Promise<void> {
  const vol = findVolume(d, volumeId)
  const mp = vol && fsMountOf(d, vol)
  if (mp) await thawIfLeftFrozen(d, mp, { volume_id: volumeId }, undefined, true)
}

/**
 * Makes sure the filesystem about to lose its last mount at mp is not frozen: unmounting a
 * frozen filesystem succeeds, but its superblock stays frozen and holds the loop device for
 * good. A freeze of this process's own copy is ABORTED (retry once the copy is done); one left by
 * a killed node plugin is thawed. Errors of the probe other than EBUSY (a filesystem that
 * cannot freeze) leave the unmount to go on.
 */
export async function thawBeforeUnmount(d: NodeDeps, volumeId: string, mp: string): Promise<void> {
  await thawIfLeftFrozen(d, mp, { volume_id: volumeId }, `volume ${volumeId} is frozen for a snapshot's copy; retry once the copy is done`, false)
}

/** Copies a volume's data (dir tree or image) to dst, freezing a mounted image meanwhile. */
async function copyVolumeData(d: NodeDeps, vol: Located, dst: string, signal?: AbortSignal): Promise<void> {
  if (vol.kind === 'dir') {
    await copyTree(vol.path, dst, { signal })
    return
  }
  const mp = fsMountOf(d, vol)
  if (!mp) {
    await copyImage(vol.path, dst, { signal })
    return
  }
  const key = await freezeForCopy(d, mp)
  try {
    await copyImage(vol.path, dst, { signal })
  } finally {
    thawCopy(mp, key)
  }
}

/** Builds final from a copy made at a temporary name beside it; removes a stale temp first. */
export async function buildAtomically(final: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(final), `.${path.basename(final)}.tmp`)
  await mkdirs(path.dirname(final))
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

export async function removeAny(p: string): Promise<void> {
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
export async function takeSnapshots(d: NodeDeps, snaps: SnapshotObject[], signal?: AbortSignal): Promise<void> {
  const work: { snap: SnapshotObject; vol: Located; final: string }[] = []
  for (const snap of snaps) {
    const vol = findVolume(d, snap.spec.sourceVolumeId)
    if (!vol) throw failedPrecondition(`the data of volume ${snap.spec.sourceVolumeId} is not on node ${d.nodeId}`)
    const final = d.layout.snapshotPath(snap.id, snap.spec.pool, snap.spec.kind)
    if (!(await fsp.lstat(final).catch(() => undefined))) work.push({ snap, vol, final })
    // Copied before a kill that came ahead of the thaw: the copy is done, the freeze is not.
    else await thawLeftover(d, vol.id)
  }
  // A pool with no byte left cannot hold a copy: say so before freezing a pod's filesystem
  // (whose flush could then only fail with EIO) for a copy that cannot succeed.
  for (const pool of new Set(work.map((w) => w.snap.spec.pool))) {
    const root = d.layout.pools.get(pool)
    if (root !== undefined && d.mounter.statfs(root).bavail === 0n) throw exhausted(`pool ${JSON.stringify(pool)} on node ${d.nodeId} is out of space: no room for a snapshot`)
  }
  const mounts = [...new Set(work.map((w) => fsMountOf(d, w.vol)).filter((m): m is string => m !== undefined))]
  const frozen: [string, string][] = []
  try {
    for (const mp of mounts) frozen.push([mp, await freezeForCopy(d, mp)])
    for (const w of work) {
      await buildAtomically(w.final, (tmp) => (w.vol.kind === 'dir' ? copyTree(w.vol.path, tmp, { signal }) : copyImage(w.vol.path, tmp, { signal })).then(() => undefined))
        .catch((e: unknown) => { throw signal?.aborted ? stopped(signal, `snapshot ${w.snap.id}`) : outOfSpace(d, w.snap.spec.pool, e) })
    }
  } finally {
    // A frozen filesystem must never stay frozen: writers in the pod would hang.
    for (const [mp, key] of frozen.reverse()) thawCopy(mp, key)
  }
}

/** ENOSPC/EDQUOT as RESOURCE_EXHAUSTED naming the pool (the errno names only a path); else e. */
function outOfSpace(d: NodeDeps, pool: string, e: unknown): unknown {
  const code = (e as { code?: unknown })?.code
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return e
  return exhausted(`pool ${JSON.stringify(pool)} on node ${d.nodeId} is out of space: ${(e as Error).message}`)
}

export async function removeSnapshot(d: NodeDeps, snap: SnapshotObject): Promise<void> {
  // Still Copying: the copy may have been cut short by a kill, with its source left frozen.
  if (snap.status?.phase === 'Copying') await thawLeftover(d, snap.spec.sourceVolumeId)
  const final = d.layout.snapshotPath(snap.id, snap.spec.pool, snap.spec.kind)
  await removeAny(path.join(path.dirname(final), `.${path.basename(final)}.tmp`))
  await removeAny(final)
}

/**
 * Makes a restored or cloned volume's data. `snapshotReady` is the store's word on the source
 * snapshot; an image bigger than its source is grown, and an ext4 in it is resized offline (xfs
 * and btrfs grow online at the first NodeStageVolume).
 */
export async function fillFromSource(d: NodeDeps, vol: VolumeObject, snapshot: SnapshotObject | undefined, signal?: AbortSignal): Promise<void> {
  const src = vol.spec.contentSource!
  const image = vol.spec.kind === 'image'
  const final = image ? d.layout.imagePath(vol.id, vol.spec.pool) : d.layout.volumeDir(vol.id, vol.spec.pool)
  if (await fsp.lstat(final).catch(() => undefined)) return
  await buildAtomically(final, async (tmp) => {
    if ('snapshotId' in src) {
      if (!snapshot) throw failedPrecondition(`snapshot ${src.snapshotId} does not exist`)
      if (snapshot.status?.phase !== 'Ready') throw aborted(`snapshot ${src.snapshotId} is still being copied; retry`)
      const from = d.layout.snapshotPath(snapshot.id, snapshot.spec.pool, snapshot.spec.kind)
      if (image) await copyImage(from, tmp, { signal })
      else await copyTree(from, tmp, { signal })
    } else {
      const from = findVolume(d, src.volumeId)
      if (!from) throw failedPrecondition(`the data of volume ${src.volumeId} is not on node ${d.nodeId}`)
      await copyVolumeData(d, from, tmp, signal)
    }
    if (image) {
      const size = BigInt(vol.spec.capacityBytes)
      if (BigInt((await fsp.stat(tmp)).size) < size) {
        await fsp.truncate(tmp, Number(size))
        if (vol.spec.fsType === 'ext4') await growFs('ext4-offline', tmp, '', signal)
      }
    } else {
      await fsp.chmod(tmp, 0o777)
    }
  }).catch((e: unknown) => { throw signal?.aborted ? stopped(signal, `filling volume ${vol.id}`) : e })
}
