// The local store's ledger: compare-and-swap over a folder, so that two controller processes
// sharing one state folder stay as safe as two controllers sharing an API server. No lock file
// (a killed holder would leave it behind, and breaking a stale lock races).
//
// Every write makes a new version, `<id>.v<version>.json`, with createFileExclusive (link(2)),
// which fails when another process made that version first: exactly one writer wins each version,
// and a process killed at any instant leaves the previous version whole. Readers take the highest.
// Old versions are removed, but only while no other writer is between its read and its write: a
// removed number would be free again, and a writer that read long ago could then "win" a version
// below the newest, which no reader ever looks at. Each writer announces itself with an intent
// file (`<id>.w.<pid>.<n>`) before it reads; a writer that won prunes only when it sees no other
// live intent.
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { aborted, invalid, unavailable } from '../errors.js'
import { createFileExclusive, removeStaleTemps } from './atomic.js'
import type { Ledger, LedgerChange } from './types.js'

// Ledger ids are `node.<node id>` (node ids are up to 128 characters) or fixed names.
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$/
const VERSION = /^(.+)\.v(\d{1,15})\.json$/
const INTENT = /^(.+)\.w\.(\d+)\.\d+$/
/** Lost races tolerated before ABORTED; each one means another process's write went through. */
const MAX_ATTEMPTS = 100

let counter = 0

export class LocalLedger<D> implements Ledger<D> {
  constructor(readonly dir: string) {}

  async open(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    await removeStaleTemps(this.dir)
  }

  async get(id: string): Promise<D | undefined> {
    assertId(id)
    return (await this.read(id)).doc
  }

  async update<R>(id: string, change: (cur: D | undefined) => LedgerChange<D, R>): Promise<R> {
    assertId(id)
    const intent = path.join(this.dir, `${id}.w.${process.pid}.${++counter}`)
    await this.fs('announce a write to', id, () => fsp.writeFile(intent, ''))
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const cur = await this.read(id)
        const { next, result } = change(cur.doc)
        if (next === undefined) return result
        const version = cur.version + 1
        const won = await this.fs('write', id, () => createFileExclusive(this.file(id, version), JSON.stringify(next)))
        if (won) {
          await this.prune(id, version, intent)
          return result
        }
        await pause(attempt)
      }
      throw aborted(`store: ledger ${id} kept changing under ${MAX_ATTEMPTS} attempts; retry`)
    } finally {
      await fsp.rm(intent, { force: true })
    }
  }

  /** Removes versions below version, unless another live writer may still be about to write. */
  private async prune(id: string, version: number, own: string): Promise<void> {
    const names = await fsp.readdir(this.dir)
    for (const name of names) {
      const m = INTENT.exec(name)
      if (m?.[1] !== id || path.join(this.dir, name) === own) continue
      if (alive(Number(m[2]))) return
      await fsp.rm(path.join(this.dir, name), { force: true }) // a dead writer's leftover
    }
    for (const name of names) {
      const m = VERSION.exec(name)
      if (m?.[1] === id && Number(m[2]) < version) await fsp.rm(path.join(this.dir, name), { force: true })
    }
  }

  private file(id: string, version: number): string {
    return path.join(this.dir, `${id}.v${version}.json`)
  }

  private async read(id: string): Promise<{ version: number; doc?: D }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let newest = 0
      for (const name of await this.fs('list', id, () => fsp.readdir(this.dir))) {
        const m = VERSION.exec(name)
        if (m?.[1] === id && Number(m[2]) > newest) newest = Number(m[2])
      }
      if (newest === 0) return { version: 0 }
      try {
        return { version: newest, doc: JSON.parse(await fsp.readFile(this.file(id, newest), 'utf8')) as D }
      } catch (e) {
        // Pruned by the writer of a newer version between the listing and the read: list again.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw unavailable(`store: cannot read ledger ${id} version ${newest}: ${(e as Error).message}`)
      }
    }
    throw aborted(`store: ledger ${id} kept changing while being read; retry`)
  }

  /** Runs a file operation, turning its raw error into UNAVAILABLE (the Store contract). */
  private async fs<T>(what: string, id: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op()
    } catch (e) {
      throw unavailable(`store: cannot ${what} ledger ${id}: ${(e as Error).message}`)
    }
  }
}

/** Ids become file names: refused before they touch the disk. */
function assertId(id: string): void {
  if (!SAFE_ID.test(id)) throw invalid('id', `store: ${JSON.stringify(id)} is not a valid ledger id`)
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A short, growing, jittered pause, so two processes that keep colliding fall out of step. */
function pause(attempt: number): Promise<void> {
  const ms = Math.min(1 + attempt, 10) * Math.random()
  return new Promise((r) => setTimeout(r, ms))
}
