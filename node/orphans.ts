// Data in a pool that no store object owns. A killed plugin, a store restored from a backup, or a
// TscsiVolume deleted by hand with its finalizer stripped can each leave a volume directory, an
// image or a snapshot copy behind, holding disk space the capacity reports then hide from the
// scheduler. The watcher reports each one (a log line when first seen, and the gauge
// tscsi_node_orphaned_data) and removes it only when --remove-orphans-after says so, and only
// once it has stayed unowned for that long: a volume created a moment ago may not have reached
// this node's copy of the store yet.
//
// Owned, never reported: a volume or snapshot object of this node for that pool; the temporary
// name of one being built (`.<name>.tmp`); an ephemeral inline volume that is mounted; data kept
// by onDelete: retain (noted in <pool>/retained/); archive/ (kept on purpose) and staged/.
// Names the driver never makes are reported but never removed: they are not ours to delete.
import { promises as fsp, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { idInName, idKind, VOLUME_KINDS } from '../common/ids.js'
import type { Logger } from '../common/log.js'
import type { Store } from '../common/store/types.js'
import { removeVolumeDir } from './datadir.js'
import type { NodeDeps } from './deps.js'
import { loopDeviceFor } from './loops.js'

export type OrphanKind = 'volume' | 'image' | 'snapshot' | 'unknown'

export interface Orphan {
  pool: string
  kind: OrphanKind
  path: string
  /** The volume or snapshot id the name stands for; absent for names the driver never makes. */
  id?: string
  /** When this process first saw it unowned (ms since the epoch). */
  since: number
}

// The id each folder's entries are named by (see layout.ts); undefined for names we never make.
type IdOf = (name: string) => string | undefined
const VOLUME: IdOf = (name) => idInName(name, VOLUME_KINDS)
const IMAGE: IdOf = (name) => idInName(name, VOLUME_KINDS, '.img')
// A snapshot's copy is a directory tree (dir volumes) or an image file.
const SNAPSHOT: IdOf = (name) => idInName(name, ['s']) ?? idInName(name, ['s'], '.img')
const TEMP = /^\.(.+)\.tmp$/

export interface OrphanOptions {
  deps: NodeDeps
  store: Store
  log: Logger
  /** 0: report only. Otherwise remove what stayed unowned this long. */
  removeAfterMs: number
  now?: () => number
}

export class OrphanWatch {
  private seen = new Map<string, Orphan>()
  private readonly now: () => number

  constructor(private readonly o: OrphanOptions) {
    this.now = o.now ?? Date.now
  }

  /** What the last scan found, for the gauge. */
  current(): Orphan[] {
    return [...this.seen.values()]
  }

  /** Scans every pool; reports new orphans, forgets owned ones, removes expired ones if allowed. */
  async scan(): Promise<Orphan[]> {
    const d = this.o.deps
    const volumes = new Set<string>()
    for (const v of await this.o.store.volumes.list()) if (v.spec.node === d.nodeId) volumes.add(`${v.spec.pool}/${v.id}`)
    const snapshots = new Set<string>()
    for (const s of await this.o.store.snapshots.list()) if (s.spec.node === d.nodeId) snapshots.add(`${s.spec.pool}/${s.id}`)
    const mounted = new Set(d.index.volumes())
    const next = new Map<string, Orphan>()
    for (const pool of d.layout.pools.keys()) {
      const retained = new Set(await names(d.layout.retainedDirOf(pool)))
      const owned = (id: string, kind: OrphanKind): boolean =>
        kind === 'snapshot' ? snapshots.has(`${pool}/${id}`)
          : volumes.has(`${pool}/${id}`) || retained.has(id) || (idKind(id) === 'e' && mounted.has(id))
      const look = async (dir: string, idOf: IdOf, kind: OrphanKind) => {
        for (const name of await names(dir)) {
          const id = idOf(TEMP.exec(name)?.[1] ?? name)
          if (id && owned(id, kind)) continue
          const p = path.join(dir, name)
          next.set(p, this.seen.get(p) ?? this.report({ pool, kind: id ? kind : 'unknown', path: p, ...(id && { id }), since: this.now() }))
        }
      }
      await look(d.layout.volumesDirOf(pool), VOLUME, 'volume')
      await look(d.layout.imagesDirOf(pool), IMAGE, 'image')
      await look(d.layout.snapshotsDirOf(pool), SNAPSHOT, 'snapshot')
    }
    this.seen = next
    if (this.o.removeAfterMs > 0) {
      for (const orphan of next.values()) {
        if (orphan.kind === 'unknown' || this.now() - orphan.since < this.o.removeAfterMs) continue
        await this.remove(orphan)
      }
    }
    return this.current()
  }

  private report(orphan: Orphan): Orphan {
    const removal = this.o.removeAfterMs > 0 && orphan.kind !== 'unknown'
      ? `it will be removed if it stays unowned for ${this.o.removeAfterMs / 1000}s (--remove-orphans-after)`
      : orphan.kind === 'unknown' ? 'the driver never makes this name, so it never removes it' : 'it is kept (--remove-orphans-after is off)'
    this.o.log.warn({ pool: orphan.pool, path: orphan.path, kind: orphan.kind, id: orphan.id }, `data no volume or snapshot owns: ${removal}`)
    return orphan
  }

  private async remove(orphan: Orphan): Promise<void> {
    const d = this.o.deps
    // Never from under a mount or a loop device, whatever the store says. The device is found by
    // the file's identity: sysfs may name the file by a path that was never ours (loops.ts).
    if (orphan.id && d.index.paths(orphan.id).length > 0) return
    const file = d.mounter.inspect(orphan.path)
    if (file?.type === 'file' && loopDeviceFor(file) !== undefined) return
    try {
      const st = await fsp.lstat(orphan.path)
      if (st.isDirectory()) await removeVolumeDir(orphan.path)
      else await fsp.rm(orphan.path, { force: true })
      this.seen.delete(orphan.path)
      this.o.log.warn({ pool: orphan.pool, path: orphan.path, kind: orphan.kind, id: orphan.id }, 'removed data no volume or snapshot owned (--remove-orphans-after)')
    } catch (e) {
      this.o.log.warn({ path: orphan.path, err: e }, 'could not remove orphaned data')
    }
  }
}

/** Notes that a volume's data was kept by onDelete: retain, so it is not an orphan. */
export function noteRetained(deps: NodeDeps, pool: string, id: string, name: string): void {
  mkdirSync(deps.layout.retainedDirOf(pool), { recursive: true, mode: 0o700 })
  writeFileSync(deps.layout.retainedNoteOf(pool, id), `${name}\n`, { mode: 0o600 })
}

/** A volume with that id exists again (same name): its data is owned once more. */
export function forgetRetained(deps: NodeDeps, pool: string, id: string): void {
  rmSync(deps.layout.retainedNoteOf(pool, id), { force: true })
}

async function names(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
}
