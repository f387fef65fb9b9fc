// Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it over
// the target, fsync the directory. After a kill -9 at any instant the target holds either the
// old or the new content; only a stray temp file (dot-prefixed, ignored by readers) can be left,
// named after its writer's pid so a sweep can tell a dead writer's leftover from a live write.
import { promises as fsp } from 'node:fs'
import path from 'node:path'

let counter = 0

/** Writes data to a fresh temp file beside file and fsyncs it; returns the temp file's path. */
async function writeTemp(file: string, data: string): Promise<string> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${++counter}.tmp`)
  const fh = await fsp.open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return tmp
}

export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const dir = path.dirname(file)
  const tmp = await writeTemp(file, data)
  try {
    await fsp.rename(tmp, file)
  } catch (e) {
    await fsp.rm(tmp, { force: true })
    throw e
  }
  await syncDir(dir)
}

/**
 * Creates file with data only if it does not exist, atomically across processes: the data is
 * written and fsynced in a temp file, then hard-linked to the name (link(2) fails with EEXIST
 * when the name is taken). Readers see no file or the whole file, never a partial one. Returns
 * false when the file existed.
 */
export async function createFileExclusive(file: string, data: string): Promise<boolean> {
  const dir = path.dirname(file)
  const tmp = await writeTemp(file, data)
  try {
    await fsp.link(tmp, file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw e
  } finally {
    await fsp.rm(tmp, { force: true })
  }
  await syncDir(dir)
  return true
}

export async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r')
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

/** A temp file older than this is stale whoever wrote it: no write takes anywhere near as long. */
const STALE_MS = 10 * 60_000

/**
 * Removes temp files a killed writer left behind. Two live processes share a store folder (the
 * controller and the node plugin on one machine) and each sweeps it when it starts: a temp file
 * of the other one, still alive, is a write in flight, and removing it would fail that write's
 * rename (a status lost until the next resync). So a temp file goes only when the writer named
 * by the pid in it is dead (or this process), or when it is older than any write takes.
 */
export async function removeStaleTemps(dir: string, now = Date.now()): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (!name.startsWith('.') || !name.endsWith('.tmp')) continue
    const file = path.join(dir, name)
    const pid = Number(/\.(\d+)\.\d+\.tmp$/.exec(name)?.[1] ?? 0)
    if (pid > 0 && pid !== process.pid && alive(pid)) {
      const st = await fsp.stat(file).catch(() => undefined)
      if (!st || now - st.mtimeMs < STALE_MS) continue
    }
    await fsp.rm(file, { force: true })
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
