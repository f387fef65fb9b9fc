// The store without a cluster: one folder per collection, one JSON document per object part
// (`<id>.spec.json`, `<id>.status.json`), replaced atomically. The controller and the node plugin
// on one machine share the folder; inotify (fs.watch) carries changes between them within
// milliseconds and a periodic rescan catches anything a watch could miss.
import { promises as fsp, readFileSync, watch, type FSWatcher } from 'node:fs'
import path from 'node:path'
import { failedPrecondition, invalid, unavailable } from '../errors.js'
import { Mutexes } from '../lock.js'
import type { Logger } from '../log.js'
import { createFileExclusive, removeStaleTemps, syncDir, writeFileAtomic } from './atomic.js'
import { LocalLedger } from './local-ledger.js'
import type { ExportSpec, ExportStatus, LedgerDoc, NodeSpec, NodeStatus, SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from './model.js'
import type { Collection, Store, StoredObject } from './types.js'

// Ids become file names: only the characters our ids and node ids use.
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const FILE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.(spec|status)\.json$/

type Part = 'spec' | 'status'

interface Entry<S, T> {
  spec?: S
  status?: T
}

function assertId(id: string): void {
  if (!SAFE_ID.test(id)) throw invalid('id', `store: ${JSON.stringify(id)} is not a valid object id`)
}

export class LocalCollection<S, T> implements Collection<S, T> {
  private readonly cache = new Map<string, Entry<S, T>>()
  private sorted: string[] | undefined
  // What list() hands out, built once per change instead of once per call (with 10,000 volumes
  // building them was most of a ListVolumes): the list, dropped on any change, and each object's
  // view, dropped when that object changes. An unchanged object keeps its view across listings,
  // so callers can cache what they derive from it (the controller caches ListVolumes entries).
  private listed: StoredObject<S, T>[] | undefined
  private readonly views = new Map<string, StoredObject<S, T>>()
  private readonly listeners = new Set<(id: string) => void>()
  private readonly pending = new Set<string>()
  // Own writes and re-reads of one id run one at a time, so a re-read that started before a
  // write can never put the older document back into the cache after it.
  private readonly serial = new Mutexes()
  private watcher: FSWatcher | undefined
  private rescanTimer: NodeJS.Timeout | undefined

  constructor(
    readonly dir: string,
    private readonly log: Logger,
    private readonly rescanMs = 30_000,
  ) {}

  async open(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    await removeStaleTemps(this.dir)
    await this.rescan(false)
    await this.sweepOrphans()
    this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
      const m = typeof name === 'string' ? FILE.exec(name) : null
      if (m?.[1]) this.scheduleReload(m[1], m[2] as Part)
    })
    this.watcher.on('error', (e) => this.log.warn({ err: e, dir: this.dir }, 'store watch failed; relying on rescans'))
    this.rescanTimer = setInterval(() => {
      this.rescan(true).catch((e) => this.log.warn({ err: e }, 'store rescan failed'))
    }, this.rescanMs)
    this.rescanTimer.unref()
  }

  close(): void {
    this.watcher?.close()
    if (this.rescanTimer) clearInterval(this.rescanTimer)
  }

  async get(id: string): Promise<StoredObject<S, T> | undefined> {
    return this.view(id)
  }

  async refresh(id: string): Promise<StoredObject<S, T> | undefined> {
    assertId(id)
    await this.reload(id, false)
    return this.view(id)
  }

  async list(): Promise<StoredObject<S, T>[]> {
    if (!this.sorted) this.sorted = [...this.cache.keys()].filter((id) => this.cache.get(id)?.spec).sort()
    this.listed ??= this.sorted.map((id) => this.listView(id)).filter((o): o is StoredObject<S, T> => o !== undefined)
    // A copy of the array: callers may sort or splice what they get.
    return this.listed.slice()
  }

  async putSpec(id: string, spec: S): Promise<void> {
    assertId(id)
    await this.write(id, 'spec', spec)
  }

  async create(id: string, spec: S): Promise<boolean> {
    assertId(id)
    const made = await this.serial.run(id, async () => {
      let ok: boolean
      try {
        ok = await createFileExclusive(this.file(id, 'spec'), JSON.stringify(spec))
      } catch (e) {
        throw unavailable(`store: cannot create ${id}.spec: ${(e as Error).message}`)
      }
      if (!ok) return this.reloadNow(id, true).then(() => false)
      const entry = this.cache.get(id) ?? {}
      if (!entry.spec) this.sorted = undefined
      this.changed(id)
      this.cache.set(id, { ...entry, spec })
      return true
    })
    if (made) this.notify(id)
    return made
  }

  async putStatus(id: string, status: T): Promise<void> {
    assertId(id)
    const gone = (): Error => failedPrecondition(`store: object ${id} no longer exists; status not written`)
    if (!(await this.exists(id, 'spec'))) throw gone()
    await this.write(id, 'status', status)
    // Another process may have removed the object between the check and the write. remove()
    // deletes the spec before the status, so if the spec is gone now, our status is an orphan.
    if (!(await this.exists(id, 'spec'))) {
      await fsp.rm(this.file(id, 'status'), { force: true })
      await this.serial.run(id, () => this.reloadNow(id, true))
      throw gone()
    }
  }

  private async exists(id: string, part: Part): Promise<boolean> {
    try {
      await fsp.access(this.file(id, part))
      return true
    } catch {
      return false
    }
  }

  async remove(id: string, _opts?: { force?: boolean }): Promise<void> {
    assertId(id)
    await this.serial.run(id, async () => {
      // Spec first: the spec is the object, so it is gone the moment its file is. A status
      // written concurrently by another process is then either removed here or noticed as an
      // orphan by its writer (see putStatus); a crash in between leaves an orphan status that
      // the next open() sweeps.
      for (const part of ['spec', 'status'] as const) {
        await fsp.rm(this.file(id, part), { force: true }).catch((e) => {
          throw unavailable(`store: cannot remove ${id}: ${(e as Error).message}`)
        })
      }
      await syncDir(this.dir)
      if (this.cache.delete(id)) this.sorted = undefined
      this.changed(id)
    })
    this.notify(id)
  }

  watch(listener: (id: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private file(id: string, part: Part): string {
    return path.join(this.dir, `${id}.${part}.json`)
  }

  private view(id: string): StoredObject<S, T> | undefined {
    const e = this.cache.get(id)
    if (!e?.spec) return undefined
    return e.status === undefined ? { id, spec: e.spec } : { id, spec: e.spec, status: e.status }
  }

  /** A view shared by every listing until the object changes (list() callers must not mutate it). */
  private listView(id: string): StoredObject<S, T> | undefined {
    let v = this.views.get(id)
    if (!v) {
      v = this.view(id)
      if (v) this.views.set(id, v)
    }
    return v
  }

  private changed(id: string): void {
    this.views.delete(id)
    this.listed = undefined
  }

  private async write(id: string, part: Part, value: S | T): Promise<void> {
    await this.serial.run(id, async () => {
      try {
        await writeFileAtomic(this.file(id, part), JSON.stringify(value))
      } catch (e) {
        throw unavailable(`store: cannot write ${id}.${part}: ${(e as Error).message}`)
      }
      const entry = this.cache.get(id) ?? {}
      if (!this.cache.has(id) || (part === 'spec' && !entry.spec)) this.sorted = undefined
      if (part === 'spec') entry.spec = value as S
      else entry.status = value as T
      this.cache.set(id, entry)
      this.changed(id)
    })
    this.notify(id)
  }

  /**
   * One part as on disk. Read synchronously: documents are a few hundred bytes on the state
   * folder's local disk, and fs.promises' open/fstat/read/close (four thread-pool hops and a
   * FileHandle) cost more than the read itself; on the create and delete paths they were about
   * half of each RPC's time (BENCHMARKS.md).
   */
  private readPart<V>(id: string, part: Part): V | undefined {
    let text: string
    try {
      text = readFileSync(this.file(id, part), 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
    try {
      return JSON.parse(text) as V
    } catch (e) {
      // Atomic writes make this a disk fault, not a torn write. Skip the document and say so
      // loudly rather than crash the process for every other volume.
      this.log.error({ file: this.file(id, part), err: e }, 'store: unreadable document ignored')
      return undefined
    }
  }

  /** Re-reads one id (or one part of it); returns whether anything changed. */
  private reload(id: string, notify: boolean, only?: Part): Promise<boolean> {
    return this.serial.run(id, () => this.reloadNow(id, notify, only))
  }

  private async reloadNow(id: string, notify: boolean, only?: Part): Promise<boolean> {
    const before = this.cache.get(id)
    const spec = only === 'status' ? before?.spec : this.readPart<S>(id, 'spec')
    const status = only === 'spec' ? before?.status : this.readPart<T>(id, 'status')
    const changed = JSON.stringify(before?.spec) !== JSON.stringify(spec) || JSON.stringify(before?.status) !== JSON.stringify(status)
    if (!changed) return false
    this.changed(id)
    if (Boolean(before?.spec) !== Boolean(spec)) this.sorted = undefined
    if (spec === undefined && status === undefined) this.cache.delete(id)
    else this.cache.set(id, { ...(spec !== undefined && { spec }), ...(status !== undefined && { status }) })
    if (notify) this.notify(id)
    return true
  }

  /**
   * A watch event names one part's file: only that part is read again (a lifecycle writes each
   * part several times, and reading both on every event doubled the reads). Events for one part
   * that arrive before its read starts share it.
   */
  private scheduleReload(id: string, part: Part): void {
    const key = `${id}.${part}`
    if (this.pending.has(key)) return
    this.pending.add(key)
    setImmediate(() => {
      this.pending.delete(key)
      this.reload(id, true, part).catch((e) => this.log.warn({ err: e, id }, 'store reload failed'))
    })
  }

  /** Statuses whose object is gone (a remove() cut short by a crash). */
  private async sweepOrphans(): Promise<void> {
    for (const [id, e] of this.cache) {
      if (e.spec === undefined && e.status !== undefined) {
        await fsp.rm(this.file(id, 'status'), { force: true })
        this.cache.delete(id)
      }
    }
  }

  private async rescan(notify: boolean): Promise<void> {
    const ids = new Set<string>()
    for (const name of await fsp.readdir(this.dir)) {
      const m = FILE.exec(name)
      if (m?.[1]) ids.add(m[1])
    }
    for (const id of this.cache.keys()) ids.add(id)
    for (const id of ids) await this.reload(id, notify)
  }

  private notify(id: string): void {
    for (const l of this.listeners) {
      try {
        l(id)
      } catch (e) {
        this.log.error({ err: e, id }, 'store listener failed')
      }
    }
  }
}

export class LocalStore implements Store {
  readonly volumes: LocalCollection<VolumeSpec, VolumeStatus>
  readonly nodes: LocalCollection<NodeSpec, NodeStatus>
  readonly snapshots: LocalCollection<SnapshotSpec, SnapshotStatus>
  readonly exports: LocalCollection<ExportSpec, ExportStatus>
  readonly ledger: LocalLedger<LedgerDoc>

  private constructor(
    readonly root: string,
    log: Logger,
    rescanMs: number,
  ) {
    this.volumes = new LocalCollection(path.join(root, 'volumes'), log, rescanMs)
    this.nodes = new LocalCollection(path.join(root, 'nodes'), log, rescanMs)
    this.snapshots = new LocalCollection(path.join(root, 'snapshots'), log, rescanMs)
    this.exports = new LocalCollection(path.join(root, 'exports'), log, rescanMs)
    this.ledger = new LocalLedger(path.join(root, 'ledger'))
  }

  static async open(root: string, log: Logger, rescanMs = 30_000): Promise<LocalStore> {
    const store = new LocalStore(root, log, rescanMs)
    await store.volumes.open()
    await store.nodes.open()
    await store.snapshots.open()
    await store.exports.open()
    await store.ledger.open()
    return store
  }

  async healthy(): Promise<boolean> {
    try {
      await fsp.access(this.root)
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    this.volumes.close()
    this.nodes.close()
    this.snapshots.close()
    this.exports.close()
  }
}
