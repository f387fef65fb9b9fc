// Snapshots, restores and clones of nfs volumes (issue 16). The data never leaves the server's
// export: the node that acts mounts the share and copies one directory into another with the
// copy engine (node/copy.ts), which asks for a reflink first. Over NFS 4.2 that is the CLONE
// operation, so a server whose filesystem can reflink (xfs, btrfs) shares the blocks; anything
// else gets a sparse copy that keeps metadata. Snapshots live in <share>/.tscsi-snapshots/<id>,
// a name no volume's subDir may take (controller/nfs.ts).
//
// NFS has no FIFREEZE: a snapshot of a volume pods are writing is a copy of each file as it is
// when the copy reaches it, not a crash-consistent image (README). Every copy is built under a
// temporary name and renamed into place when complete, as for local volumes.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { failedPrecondition } from '../common/errors.js'
import type { SnapshotObject, VolumeObject } from '../common/store/types.js'
import { checkSubDir } from '../common/nfs-paths.js'
import { copyTree } from './copy.js'
import type { NodeDeps } from './deps.js'
import { openBelow, whereFromSpec, withShare, type NfsWhere } from './nfs.js'
import { buildAtomically, removeAny } from './snapshots.js'

/** A snapshot's location from its spec, checked as a volume's is. */
function snapshotWhere(snap: SnapshotObject): NfsWhere & { mountOptions: string[] } {
  const w = snap.spec.nfs
  if (!w) throw failedPrecondition(`snapshot ${snap.id} is of kind nfs but its spec says nothing of where it lives`)
  return { ...whereFromSpec({ id: snap.id, spec: { nfs: w } } as VolumeObject), mountOptions: w.mountOptions ?? [] }
}

/**
 * Copies root/from (a volume's directory or a snapshot's) to final, a path under an open
 * directory of the share, unless final is there already. The source's path is first walked one
 * segment at a time, refusing a symlink anywhere on it; then the copy engine opens it by name
 * (it opens its root O_NOFOLLOW, and never follows a link inside). Between the two, only root on
 * the server could swap a segment: the folders above a volume's directory are the driver's (0755),
 * and no pod mounts them (no volume's directory may hold another's).
 */
async function copyDirAtomically(root: string, from: string, final: string, mode?: number): Promise<void> {
  if (await fsp.lstat(final).catch(() => undefined)) return
  const src = await openBelow(root, checkSubDir(from, 'source directory'), false)
  if (!src) throw failedPrecondition(`${from} is not on the share (removed behind the driver's back?)`)
  await src.close()
  await buildAtomically(final, async (tmp) => {
    await copyTree(path.join(root, from), tmp)
    if (mode !== undefined) await fsp.chmod(tmp, mode)
  })
}

/** Takes an nfs snapshot: the source volume's directory copied to the snapshot's. */
export async function takeNfsSnapshot(d: NodeDeps, snap: SnapshotObject, source: VolumeObject | undefined): Promise<void> {
  if (!source?.spec.nfs) throw failedPrecondition(`volume ${snap.spec.sourceVolumeId} is gone; its snapshot cannot be taken`)
  const from = whereFromSpec(source)
  const to = snapshotWhere(snap)
  if (from.server !== to.server || from.share !== to.share) throw failedPrecondition(`snapshot ${snap.id} is not on the export of volume ${source.id}`)
  await withShare(d, snap.id, to, to.mountOptions, async (root) => {
    await fsp.mkdir(path.join(root, path.dirname(to.subDir)), { recursive: true, mode: 0o700 })
    await copyDirAtomically(root, from.subDir, path.join(root, to.subDir))
  })
}

export async function removeNfsSnapshot(d: NodeDeps, snap: SnapshotObject): Promise<void> {
  const to = snapshotWhere(snap)
  await withShare(d, snap.id, to, to.mountOptions, async (root) => {
    const final = path.join(root, to.subDir)
    await removeAny(path.join(path.dirname(final), `.${path.basename(final)}.tmp`))
    await removeAny(final)
  })
}

/**
 * Makes a restored or cloned nfs volume's directory from `from` (a snapshot's or a volume's
 * directory on the same share), mode 0777 like any new one. Parents the subDir pattern names
 * are made as makeDir makes them.
 */
export async function fillNfsVolume(d: NodeDeps, vol: VolumeObject, from: string): Promise<void> {
  const where = whereFromSpec(vol)
  await withShare(d, vol.id, where, vol.spec.nfs?.mountOptions ?? [], async (root) => {
    const parent = path.posix.dirname(where.subDir)
    const dir = (await openBelow(root, parent === '.' ? '' : parent, true))!
    try {
      await copyDirAtomically(root, from, `/proc/self/fd/${dir.fd}/${path.posix.basename(where.subDir)}`, 0o777)
    } finally {
      await dir.close()
    }
  })
}
