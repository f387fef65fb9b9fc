// Creating and removing volume directories under the data root. Removal never crosses into
// another filesystem (a mount inside a volume is refused, not emptied) and never follows a
// symlink, so deleting a volume cannot reach data outside it.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { failedPrecondition } from '../common/errors.js'
import type { VolumeObject } from '../common/store/types.js'
import { fromNodeError, statx } from '../native/index.js'
import type { Layout } from './layout.js'

/** Prepares the data root; refuses a volumes folder that is a symlink (it could point anywhere). */
export async function prepareDataRoot(volumesDir: string): Promise<void> {
  await fsp.mkdir(volumesDir, { recursive: true, mode: 0o700 })
  const st = await fsp.lstat(volumesDir)
  if (!st.isDirectory()) throw new Error(`${volumesDir} is not a directory (a symlink or file there is refused)`)
}

/**
 * Creates the directory for a dir volume. Mode 0777 like other local provisioners: pods run as
 * arbitrary users, and the folder is reachable only through the pod's mount (the data root is
 * 0700). Idempotent: an existing directory is fine, anything else at the path is an error.
 */
export async function ensureVolumeDir(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { mode: 0o777 })
    await fsp.chmod(dir, 0o777) // mkdir's mode is filtered by the umask
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromNodeError(e, 'mkdir', dir)
    const st = await fsp.lstat(dir)
    if (!st.isDirectory()) throw failedPrecondition(`${dir} exists and is not a directory`)
  }
}

/**
 * Applies a deleted volume's onDelete policy to its data and says what it did:
 * delete (the default) removes it; retain leaves it in place (a later volume with the same name,
 * and so the same id, gets it back); archive renames it to <pool>/archive/<id>-<timestamp>.
 */
export async function retire(layout: Layout, obj: VolumeObject, now: Date): Promise<string> {
  const dir = layout.volumeDir(obj.id, obj.spec.pool)
  const policy = obj.spec.parameters['onDelete'] ?? 'delete'
  if (policy === 'retain') return `volume data retained at ${dir} (onDelete: retain)`
  if (policy === 'archive') {
    const archive = layout.archiveDir(obj.spec.pool)
    await fsp.mkdir(archive, { recursive: true, mode: 0o700 })
    const to = path.join(archive, `${obj.id}-${now.toISOString().replace(/[:.]/g, '-')}`)
    try {
      await fsp.rename(dir, to)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'volume data was already gone; nothing to archive'
      throw fromNodeError(e, 'rename', dir)
    }
    return `volume data archived at ${to} (onDelete: archive)`
  }
  await removeVolumeDir(dir)
  return 'volume data removed'
}

/** Removes a volume directory and its content, staying on its filesystem. Missing is fine. */
export async function removeVolumeDir(dir: string): Promise<void> {
  let st
  try {
    st = await fsp.lstat(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
    throw fromNodeError(e, 'lstat', dir)
  }
  if (!st.isDirectory()) {
    await fsp.unlink(dir)
    return
  }
  await removeTree(dir, st.dev)
}

async function removeTree(dir: string, dev: number): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    const p = path.join(dir, name)
    const st = await fsp.lstat(p)
    if (st.isDirectory()) {
      // A bind mount of the same filesystem keeps the device number; statx's mount-root bit
      // catches it too.
      if (st.dev !== dev || statx(p).isMountRoot) throw failedPrecondition(`${p} is a mount inside the volume; unmount it first`)
      await removeTree(p, dev)
    } else {
      await fsp.unlink(p)
    }
  }
  try {
    await fsp.rmdir(dir)
  } catch (e) {
    throw fromNodeError(e, 'rmdir', dir)
  }
}
