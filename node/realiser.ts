// The node plugin's half of the store protocol: it registers the node, reports its capacity,
// and realises the volumes the controller placed here (create or remove their directories),
// writing the outcome into each volume's status. It acts only on its own node's objects.
import path from 'node:path'
import { aborted, Code, codeName, failedPrecondition, toCsiError } from '../common/errors.js'
import { idKind } from '../common/ids.js'
import { topologyOf } from '../common/keys.js'
import { Mutexes } from '../common/lock.js'
import type { Logger } from '../common/log.js'
import type { NodeSpec, NodeStatus, VolumeStatus } from '../common/store/model.js'
import type { Store, VolumeObject } from '../common/store/types.js'
import { ensureImage, ensureVolumeDir, requireRoom, retire } from './datadir.js'
import { fillFromSource, removeSnapshot, takeSnapshots } from './snapshots.js'
import type { NodeDeps } from './deps.js'
import type { NodeMetrics } from './node-metrics.js'
import { forgetRetained, noteRetained, type OrphanWatch } from './orphans.js'
import { hasNfsClient, makeDir, measureExport, retireDir, whereFromSpec, withShare } from './nfs.js'
import { fillNfsVolume, removeNfsSnapshot, takeNfsSnapshot } from './nfs-snapshots.js'

export interface RealiserOptions {
  store: Store
  deps: NodeDeps
  log: Logger
  capacityIntervalMs: number
  clock?: () => Date
  metrics?: NodeMetrics
  /** Looks for data no object owns after each resync. */
  orphans?: OrphanWatch
}

export class Realiser {
  private readonly queue = new Mutexes()
  private readonly copies = new Mutexes()
  private readonly copying = new Set<string>()
  private readonly scheduled = new Set<string>()
  private unwatch: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private capacityDirty = false
  private readonly clock: () => Date

  constructor(private readonly o: RealiserOptions) {
    this.clock = o.clock ?? (() => new Date())
  }

  async start(): Promise<void> {
    const d = this.o.deps
    const nfs = await hasNfsClient(d)
    if (!nfs) this.o.log.warn('this node\'s kernel has no NFS client (mount(2) of nfs4 is ENODEV): it does not serve nfs volumes; load the nfsv4 module to change that')
    const kinds: NodeSpec['kinds'] = ['dir', 'image', ...(nfs ? ['nfs' as const] : [])]
    await this.o.store.nodes.putSpec(d.nodeId, { topology: topologyOf(d.nodeId), maxVolumes: d.maxVolumes, kinds, pools: [...d.layout.pools.keys()] })
    await this.reportCapacity()
    const unwatchVolumes = this.o.store.volumes.watch((id) => this.schedule(id))
    const unwatchSnapshots = this.o.store.snapshots.watch((id) => this.schedule(id))
    const unwatchExports = this.o.store.exports.watch((id) => this.schedule(id))
    this.unwatch = () => { unwatchVolumes(); unwatchSnapshots(); unwatchExports() }
    await this.resync()
    void this.scanOrphans()
    this.timer = setInterval(() => {
      this.reportCapacity().catch((e) => this.o.log.warn({ err: e }, 'capacity report failed'))
      this.resync().catch((e) => this.o.log.warn({ err: e }, 'resync failed'))
      void this.scanOrphans()
    }, this.o.capacityIntervalMs)
    this.timer.unref()
  }

  stop(): void {
    this.unwatch?.()
    if (this.timer) clearInterval(this.timer)
  }

  /** After the queue drains, so objects just realised are not taken for orphans. */
  private async scanOrphans(): Promise<void> {
    if (!this.o.orphans) return
    try {
      await this.idle()
      await this.o.orphans.scan()
    } catch (e) {
      this.o.log.warn({ err: e }, 'orphan scan failed')
    }
  }

  /** Waits until nothing is queued; for tests and orderly shutdown. */
  async idle(): Promise<void> {
    while (this.scheduled.size > 0) await new Promise((r) => setTimeout(r, 5))
  }

  private async resync(): Promise<void> {
    for (const v of await this.o.store.volumes.list()) if (v.spec.node === this.o.deps.nodeId) this.schedule(v.id)
    for (const s of await this.o.store.snapshots.list()) if (s.spec.node === this.o.deps.nodeId) this.schedule(s.id)
    for (const x of await this.o.store.exports.list()) if (x.spec.node === this.o.deps.nodeId) this.schedule(x.id)
  }

  /** Coalesces bursts of notifications for one id into one reconcile, one id at a time. */
  private schedule(id: string): void {
    if (this.scheduled.has(id)) return
    this.scheduled.add(id)
    void this.queue.run(id, async () => {
      this.scheduled.delete(id)
      try {
        await this.reconcile(id)
      } catch (e) {
        this.o.metrics?.reconcileError()
        this.o.log.error({ err: e, volume_id: id }, 'reconcile failed')
      }
    })
  }

  private async reconcile(id: string): Promise<void> {
    if (idKind(id) === 's') return this.reconcileSnapshot(id)
    if (idKind(id) === 'n') return this.reconcileExport(id)
    const obj = await this.o.store.volumes.get(id)
    if (!obj || obj.spec.node !== this.o.deps.nodeId) return
    const { spec, status } = obj
    if (status && status.observedGeneration >= spec.generation) return
    const next = spec.deletionRequestedAt ? await this.removeData(obj) : await this.applySpec(obj)
    try {
      await this.o.store.volumes.putStatus(id, next)
    } catch (e) {
      // The controller drops a deleted volume's object as soon as it reads "Deleted": nothing is
      // left to report to, and nothing went wrong.
      if (next.phase === 'Deleted' && !(await this.o.store.volumes.get(id))) return
      throw e
    }
    this.capacityChanged()
  }

  /**
   * Snapshots: copy (status Copying, then Ready) or remove. A Copying status this process did
   * not write is a copy cut short by a restart: it starts again from scratch (the partial copy
   * was only ever under a temporary name). Copies run one at a time per node.
   */
  private async reconcileSnapshot(id: string): Promise<void> {
    const snap = await this.o.store.snapshots.get(id)
    if (!snap || snap.spec.node !== this.o.deps.nodeId) return
    const { spec, status } = snap
    const stamp = () => ({ observedGeneration: spec.generation, updatedAt: this.clock().toISOString() })
    if (spec.deletionRequestedAt) {
      if (status?.phase === 'Deleted' && status.observedGeneration >= spec.generation) return
      await (spec.kind === 'nfs' ? removeNfsSnapshot(this.o.deps, snap) : removeSnapshot(this.o.deps, snap))
      await this.o.store.snapshots.putStatus(id, { phase: 'Deleted', ...stamp() })
      this.capacityChanged()
      return
    }
    if (status && status.observedGeneration >= spec.generation && status.phase !== 'Copying') return
    if (this.copying.has(id)) return
    // A group snapshot's members on this node are taken together, whichever one woke us, and
    // only once the controller has written them all: the member written last wakes us again.
    const group = spec.groupId
      ? (await this.o.store.snapshots.list()).filter((s) => s.spec.groupId === spec.groupId && s.spec.node === spec.node && !s.spec.deletionRequestedAt)
      : [snap]
    if (spec.groupMembers && !spec.groupMembers.every((v) => group.some((s) => s.spec.sourceVolumeId === v))) return
    const batch = group.filter((s) => !this.copying.has(s.id) && !(s.status?.phase === 'Ready' && s.status.observedGeneration >= s.spec.generation))
    const stampOf = (s: typeof snap) => ({ observedGeneration: s.spec.generation, updatedAt: this.clock().toISOString() })
    for (const s of batch) this.copying.add(s.id)
    try {
      for (const s of batch) await this.o.store.snapshots.putStatus(s.id, { phase: 'Copying', ...stampOf(s) })
      await this.copies.run('copy', async () => spec.kind === 'nfs'
        // nfs volumes take no group snapshots (the controller refuses them): the batch is this one.
        ? takeNfsSnapshot(this.o.deps, snap, await this.o.store.volumes.get(spec.sourceVolumeId))
        : takeSnapshots(this.o.deps, batch))
      for (const s of batch) await this.o.store.snapshots.putStatus(s.id, { phase: 'Ready', ...stampOf(s) })
      this.o.log.info({ snapshot_ids: batch.map((s) => s.id), group: spec.groupId }, 'snapshot ready')
    } catch (e) {
      const err = toCsiError(e)
      this.o.metrics?.reconcileError()
      this.o.log.warn({ snapshot_id: id, err: e }, 'snapshot failed')
      for (const s of batch) await this.o.store.snapshots.putStatus(s.id, { phase: 'Failed', code: codeName(err.code), message: err.message, ...stampOf(s) }).catch(() => undefined)
    } finally {
      for (const s of batch) this.copying.delete(s.id)
      this.capacityChanged()
    }
  }

  /** An export GetCapacity asked this node to measure: each new generation gets one answer. */
  private async reconcileExport(id: string): Promise<void> {
    const obj = await this.o.store.exports.get(id)
    if (!obj || obj.spec.node !== this.o.deps.nodeId) return
    if (obj.status && obj.status.observedGeneration >= obj.spec.generation) return
    const status = await measureExport(this.o.deps, obj, this.clock())
    if (status.code) this.o.log.warn({ export_id: id, server: obj.spec.server, share: obj.spec.share, code: status.code, message: status.message }, 'export not measured')
    await this.o.store.exports.putStatus(id, status)
  }

  /** Debounced: a burst of creates costs one capacity write, not one each. */
  private capacityChanged(): void {
    if (this.capacityDirty) return
    this.capacityDirty = true
    setTimeout(() => {
      this.reportCapacity().catch((e) => this.o.log.warn({ err: e }, 'capacity report failed'))
    }, 1000).unref()
  }

  private base(obj: VolumeObject): Pick<VolumeStatus, 'observedGeneration' | 'updatedAt'> {
    return { observedGeneration: obj.spec.generation, updatedAt: this.clock().toISOString() }
  }

  /**
   * Brings the disk in line with the spec, whatever it holds now: makes what is missing (filled
   * from its source), grows what is smaller, re-applies the quota. Safe to repeat.
   */
  private async applySpec(obj: VolumeObject): Promise<VolumeStatus> {
    try {
      const d = this.o.deps
      if (obj.spec.kind === 'nfs') {
        const where = whereFromSpec(obj)
        const src = obj.spec.contentSource
        if (src) await fillNfsVolume(d, obj, await this.nfsSourceDir(src))
        else await withShare(d, obj.id, where, obj.spec.nfs?.mountOptions ?? [], (root, plan) => makeDir(root, where.subDir, plan.owner))
        this.o.log.info({ volume_id: obj.id, name: obj.spec.name, server: where.server, share: where.share, subDir: where.subDir }, 'nfs volume directory made')
        return { phase: 'Ready', ...this.base(obj) }
      }
      if (!d.layout.pools.has(obj.spec.pool)) throw failedPrecondition(`node ${d.nodeId} does not serve pool ${JSON.stringify(obj.spec.pool)}`)
      // A volume of the same name was deleted with onDelete: retain; its data is owned again.
      forgetRetained(d, obj.spec.pool, obj.id)
      if (obj.spec.contentSource) {
        const src = obj.spec.contentSource
        await fillFromSource(d, obj, 'snapshotId' in src ? await this.o.store.snapshots.get(src.snapshotId) : undefined)
      }
      if (obj.spec.kind === 'image') {
        await ensureImage(d.layout.imagePath(obj.id, obj.spec.pool), BigInt(obj.spec.capacityBytes), obj.spec.fsType ?? '')
        this.o.log.info({ volume_id: obj.id, name: obj.spec.name }, 'volume realised')
        return { phase: 'Ready', ...this.base(obj) }
      }
      const dir = d.layout.volumeDir(obj.id, obj.spec.pool)
      if (!d.mounter.inspect(dir)) await requireRoom(path.dirname(dir), BigInt(obj.spec.capacityBytes), 'a directory volume')
      await ensureVolumeDir(dir)
      const quota = this.applyQuota(obj, dir)
      this.o.log.info({ volume_id: obj.id, name: obj.spec.name, quota }, 'volume realised')
      return { phase: 'Ready', ...(quota && { quota }), ...this.base(obj) }
    } catch (e) {
      const err = toCsiError(e)
      this.o.metrics?.reconcileError()
      this.o.log.warn({ volume_id: obj.id, err: e }, 'volume could not be realised')
      // For CreateVolume NOT_FOUND means "content source missing"; a missing folder on the node
      // is the node's fault, not the caller's.
      const code = err.code === Code.NOT_FOUND ? 'INTERNAL' : codeName(err.code)
      return { phase: 'Failed', code, message: err.message, ...this.base(obj) }
    }
  }

  /** Where a restored or cloned nfs volume's data comes from on the share. */
  private async nfsSourceDir(src: NonNullable<VolumeObject['spec']['contentSource']>): Promise<string> {
    if ('snapshotId' in src) {
      const snap = await this.o.store.snapshots.get(src.snapshotId)
      if (!snap?.spec.nfs) throw failedPrecondition(`snapshot ${src.snapshotId} does not exist`)
      if (snap.status?.phase !== 'Ready') throw aborted(`snapshot ${src.snapshotId} is still being copied; retry`)
      return snap.spec.nfs.subDir
    }
    const vol = await this.o.store.volumes.get(src.volumeId)
    if (!vol?.spec.nfs) throw failedPrecondition(`volume ${src.volumeId} does not exist`)
    return vol.spec.nfs.subDir
  }

  /** Sets (or, after an expansion, raises) a dir volume's quota; says whether it is enforced. */
  private applyQuota(obj: VolumeObject, dir: string): string | undefined {
    const mode = obj.spec.parameters['quota'] ?? 'auto'
    if (mode === 'off' || obj.spec.projectId === undefined) return undefined
    const q = this.o.deps.quota
    const support = q ? q.support(obj.spec.pool) : { supported: false, reason: 'this node plugin runs without quota support' }
    if (!support.supported) {
      if (mode === 'required') throw failedPrecondition(`quota: required, but project quotas cannot be enforced here: ${support.reason}`)
      return `unenforced: ${support.reason}`
    }
    const inodes = obj.spec.parameters['quotaInodes']
    q!.apply(obj.spec.pool, dir, obj.spec.projectId, BigInt(obj.spec.capacityBytes), inodes === undefined ? undefined : BigInt(inodes))
    return 'enforced'
  }

  /** Deletes, retains or archives the data as the spec's onDelete says. */
  private async removeData(obj: VolumeObject): Promise<VolumeStatus> {
    const d = this.o.deps
    // Deleting a mounted volume would pull data from under a running pod: refuse and say where.
    const inUse = d.index.paths(obj.id).filter((p) => d.mounter.inspect(p)?.isMountRoot)
    if (inUse.length > 0) {
      return { phase: obj.status?.phase ?? 'Ready', deleteBlocked: `volume ${obj.id} is still mounted on node ${d.nodeId} at ${inUse.join(', ')}`, ...this.base(obj) }
    }
    try {
      const policy = obj.spec.parameters['onDelete'] ?? 'delete'
      if (obj.spec.kind === 'nfs') {
        const where = whereFromSpec(obj)
        let message: string
        try {
          message = await withShare(d, obj.id, where, obj.spec.nfs?.mountOptions ?? [], (root) => retireDir(root, where.subDir, policy, this.clock()))
        } catch (e) {
          // A volume whose directory was never made (its creation failed: no NFS client here, a
          // server that never answered) has nothing on the server to remove; refusing its delete
          // would keep it for ever. One that was Ready keeps refusing until the server answers.
          if (obj.status?.phase === 'Ready') throw e
          message = `nothing removed: the volume never became ready, and the share could not be reached (${toCsiError(e).message})`
        }
        this.o.log.info({ volume_id: obj.id, name: obj.spec.name, onDelete: policy }, message)
        return { phase: 'Deleted', message, ...this.base(obj) }
      }
      if (policy === 'retain') noteRetained(d, obj.spec.pool, obj.id, obj.spec.name)
      const message = await retire(d.layout, obj, this.clock())
      this.o.log.info({ volume_id: obj.id, name: obj.spec.name, onDelete: policy }, message)
      return { phase: 'Deleted', message, ...this.base(obj) }
    } catch (e) {
      const err = toCsiError(e)
      this.o.metrics?.reconcileError()
      this.o.log.warn({ volume_id: obj.id, err: e }, 'volume data could not be removed')
      return { phase: obj.status?.phase ?? 'Ready', deleteBlocked: err.message, ...this.base(obj) }
    }
  }

  async reportCapacity(): Promise<void> {
    this.capacityDirty = false
    const d = this.o.deps
    const pools: NodeStatus['pools'] = {}
    for (const [name, root] of d.layout.pools) {
      const fs = d.mounter.statfs(root)
      const unit = BigInt(fs.fragmentSize || fs.blockSize)
      pools[name] = { totalBytes: (fs.blocks * unit).toString(), availableBytes: (fs.bavail * unit).toString() }
    }
    await this.o.store.nodes.putStatus(d.nodeId, { pools, updatedAt: this.clock().toISOString() })
  }
}
