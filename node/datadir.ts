// Creating and removing volume directories under the data root. Removal never crosses into
// another filesystem (a mount inside a volume is refused, not emptied) and never follows a
// symlink, so deleting a volume cannot reach data outside it.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { exhausted, failedPrecondition } from '../common/errors.js'
import type { VolumeObject } from '../common/store/types.js'
import { allocate, fromNodeError, isErrno, statx } from '../native/index.js'
import { checkSignal } from './abort.js'
import { mkfs } from './fstools.js'
import type { Layout } from './layout.js'

/**
 * mkdir -p that reports the real errno. Node's asynchronous recursive mkdir turns a full disk
 * (ENOSPC) into ENOENT, which would reach a client as NOT_FOUND instead of RESOURCE_EXHAUSTED.
 * Idempotent: an existing directory is fine; anything else at a path is the kernel's EEXIST.
 */
export async function mkdirs(dir: string, mode = 0o700): Promise<void> {
  let err = await fsp.mkdir(dir, { mode }).then(() => undefined, (e: NodeJS.ErrnoException) => e)
  if (err?.code === 'ENOENT' && path.dirname(dir) !== dir) {
    await mkdirs(path.dirname(dir), mode)
    err = await fsp.mkdir(dir, { mode }).then(() => undefined, (e: NodeJS.ErrnoException) => e)
  }
  if (!err || (err.code === 'EEXIST' && (await fsp.stat(dir)).isDirectory())) return
  throw fromNodeError(err, 'mkdir', dir)
}

/** Prepares the data root; refuses a volumes folder that is a symlink (it could point anywhere). */
export async function prepareDataRoot(...dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    await mkdirs(dir)
    const st = await fsp.lstat(dir)
    if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a symlink or file there is refused)`)
  }
}

/**
 * Creates the directory for a dir volume. Mode 0777 like other local provisioners: pods run as
 * arbitrary users, and the folder is reachable only through the pod's mount (the data root is
 * 0700). Idempotent: an existing directory is fine, anything else at the path is an error.
 */
/**
 * Refuses a new volume the pool cannot hold. The controller placed it on a view of free space
 * that may be stale (a dir volume without a quota can fill the pool meanwhile); better to say so
 * now, naming the size and what is free, than to hand a pod a volume that fails later.
 */
export async function requireRoom(dir: string, size: bigint, what: string): Promise<void> {
  const fs = await fsp.statfs(dir, { bigint: true }).catch((e) => { throw fromNodeError(e, 'statfs', dir) })
  const free = fs.bavail * fs.bsize
  if (free < size) throw exhausted(`no room for ${what} of ${size} bytes in ${dir}: ${free} bytes free`)
}

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
  const image = obj.spec.kind === 'image'
  const dir = image ? layout.imagePath(obj.id, obj.spec.pool) : layout.volumeDir(obj.id, obj.spec.pool)
  const policy = obj.spec.parameters['onDelete'] ?? 'delete'
  if (policy === 'retain') return `volume data retained at ${dir} (onDelete: retain)`
  if (policy === 'archive') {
    await mkdirs(layout.archiveDir(obj.spec.pool))
    const to = layout.archivePathOf(obj.spec.pool, obj.id, now, image)
    try {
      await fsp.rename(dir, to)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'volume data was already gone; nothing to archive'
      throw fromNodeError(e, 'rename', dir)
    }
    return `volume data archived at ${to} (onDelete: archive)`
  }
  if (image) await fsp.rm(dir, { force: true })
  else await removeVolumeDir(dir)
  return 'volume data removed'
}

/**
 * Makes (or grows) an image volume's sparse file. A new image is built under a temporary name
 * and renamed into place only once mkfs succeeded, so a crash never leaves a half-made image
 * that a later stage would mount. Images are never shrunk. `signal` stops the work between
 * steps and kills a running mkfs (the temporary file goes, as on any failure); a fallocate
 * already in the kernel finishes first.
 */
export async function ensureImage(file: string, size: bigint, fsType: string, signal?: AbortSignal): Promise<void> {
  let st
  try {
    st = await fsp.lstat(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromNodeError(e, 'lstat', file)
  }
  if (st) {
    if (!st.isFile()) throw failedPrecondition(`${file} exists and is not a regular file`)
    if (BigInt(st.size) < size) await preallocate(file, BigInt(st.size), size)
    return
  }
  await mkdirs(path.dirname(file))
  // preallocate() below is what really reserves the blocks; this answers early, with numbers.
  await requireRoom(path.dirname(file), size, 'an image')
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`)
  await fsp.rm(tmp, { force: true })
  await fsp.writeFile(tmp, '', { flag: 'wx', mode: 0o600 })
  try {
    checkSignal(signal, `creating image ${file}`)
    await preallocate(tmp, 0n, size)
    // On a full pool mkfs fails with ENOSPC (fstools reports RESOURCE_EXHAUSTED); the temp
    // file goes either way, so a failed create leaves nothing behind.
    if (fsType) await mkfs(tmp, fsType, signal)
    checkSignal(signal, `creating image ${file}`)
    await fsp.rename(tmp, file)
  } catch (e) {
    await fsp.rm(tmp, { force: true })
    throw e
  }
}

/** Removes a volume directory and its content, staying on its filesystem. Missing is fine. */
/**
 * Gives an image file (grown from `from` to `to` bytes) its blocks now. The controller promises
 * each image its full size; a sparse one would take blocks only as the pod writes, and on a pool
 * that filled up meanwhile ext4 inside it cannot even write its journal (the next mount fails
 * with EIO). ENOSPC here is RESOURCE_EXHAUSTED; where a filesystem cannot preallocate, the file
 * is only extended.
 */
async function preallocate(file: string, from: bigint, to: bigint): Promise<void> {
  const fh = await fsp.open(file, 'r+')
  try {
    await allocate(fh.fd, Number(from), Number(to - from))
  } catch (e) {
    if (isErrno(e, 'ENOSPC') || isErrno(e, 'EDQUOT')) throw exhausted(`no room for ${to - from} more bytes of image in ${path.dirname(file)}`)
    if (!isErrno(e, 'EOPNOTSUPP')) throw e
    await fh.truncate(Number(to))
  } finally {
    await fh.close()
  }
}

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
