// Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it over
// the target, fsync the directory. After a kill -9 at any instant the target holds either the
// old or the new content; only a stray temp file (dot-prefixed, ignored by readers) can be left.
import { promises as fsp } from 'node:fs'
import path from 'node:path'

let counter = 0

export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${++counter}.tmp`)
  const fh = await fsp.open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await fsp.rename(tmp, file)
  } catch (e) {
    await fsp.rm(tmp, { force: true })
    throw e
  }
  await syncDir(dir)
}

export async function syncDir(dir: string): Promise<void> {
  const dh = await fsp.open(dir, 'r')
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

/** Removes temp files a killed writer left behind. */
export async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    if (name.startsWith('.') && name.endsWith('.tmp')) await fsp.rm(path.join(dir, name), { force: true })
  }
}
