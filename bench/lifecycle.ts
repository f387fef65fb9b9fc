// One volume's whole life as a CO drives it: CreateVolume → NodeStageVolume → NodePublishVolume →
// a write through the published target → NodeUnpublishVolume → NodeUnstageVolume →
// DeleteVolume. The harness plays kubelet: it creates the staging directory and the pod's volume
// folder's parent, and removes them afterwards (rmdir only: never recursively through a mount).
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { MOUNT_CAP, volumeOf } from './csi.js'
import type { Driver } from './drivers.js'
import { cpuMs } from './procs.js'
import { msSince, Recorder } from './stats.js'

export const STEPS = ['CreateVolume', 'NodeStageVolume', 'NodePublishVolume', 'write', 'NodeUnpublishVolume', 'NodeUnstageVolume', 'DeleteVolume'] as const

const PAYLOAD = Buffer.alloc(4096, 0x5a)
const VOLUME_BYTES = String(1 << 20)

export interface LifecycleOptions {
  /** Folder for staging and target paths (outside every driver's data root). */
  podsDir: string
  /** Unique per round, so names never collide. */
  tag: string
  /** Check that the write landed in the volume's own directory (done once per driver, untimed). */
  verify?: boolean
}

/** Runs one lifecycle, recording each step's latency in rec. Throws on the first failure. */
export async function lifecycle(d: Driver, i: number, rec: Recorder, o: LifecycleOptions): Promise<void> {
  const base = path.join(o.podsDir, `${d.name}-${o.tag}-${i}`)
  const staging = path.join(base, 'globalmount')
  const target = path.join(base, 'pod', 'mount')
  await fsp.mkdir(staging, { recursive: true })
  await fsp.mkdir(path.dirname(target), { recursive: true })
  const t0 = process.hrtime.bigint()
  let id: string | undefined
  let staged = false
  let published = false
  try {
    const created = await rec.time('CreateVolume', () => d.controller.CreateVolume({
      name: `bench-${o.tag}-${i}`,
      capacity_range: { required_bytes: VOLUME_BYTES },
      volume_capabilities: [MOUNT_CAP],
      parameters: {},
    }))
    const volume = volumeOf(created)
    id = volume.volume_id
    const ctx = volume.volume_context
    await rec.time('NodeStageVolume', () => d.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: MOUNT_CAP, volume_context: ctx }))
    staged = true
    await rec.time('NodePublishVolume', () => d.node.NodePublishVolume({
      volume_id: id, staging_target_path: staging, target_path: target, volume_capability: MOUNT_CAP, readonly: false, volume_context: ctx,
    }))
    published = true
    await rec.time('write', () => fsp.writeFile(path.join(target, 'bench.dat'), PAYLOAD))
    if (o.verify) {
      const st = await fsp.stat(path.join(d.volumePath(id), 'bench.dat'))
      if (st.size !== PAYLOAD.length) throw new Error(`${d.name}: the write through ${target} did not reach volume ${id}'s directory`)
    }
    await rec.time('NodeUnpublishVolume', () => d.node.NodeUnpublishVolume({ volume_id: id, target_path: target }))
    published = false
    if (o.verify) {
      const still = await fsp.stat(target).then(() => true, () => false)
      if (still) throw new Error(`${d.name}: ${target} still exists after NodeUnpublishVolume`)
    }
    await rec.time('NodeUnstageVolume', () => d.node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }))
    staged = false
    await rec.time('DeleteVolume', () => d.controller.DeleteVolume({ volume_id: id }))
    id = undefined
    rec.add('lifecycle', msSince(t0))
  } finally {
    // After a failure, take down what was made (best effort), so a later phase starts clean.
    if (published && id) await d.node.NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined)
    if (staged && id) await d.node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined)
    if (id) await d.controller.DeleteVolume({ volume_id: id }).catch(() => undefined)
    for (const p of [target, path.dirname(target), staging, base]) await fsp.rmdir(p).catch(() => undefined)
  }
}

export interface RoundOptions extends LifecycleOptions {
  concurrency: number
  /** Stop starting lifecycles after this long... */
  durationMs: number
  /** ...or after this many, whichever comes first. */
  maxLifecycles: number
}

export interface RoundResult {
  driver: string
  concurrency: number
  lifecycles: number
  seconds: number
  perSecond: number
  /** CPU time of the driver's serving processes per lifecycle, in ms. */
  cpuMsPerLifecycle: number
  rec: Recorder
}

/** `concurrency` workers run lifecycles back to back until the round's time or count is used up. */
export async function runRound(d: Driver, o: RoundOptions): Promise<RoundResult> {
  const rec = new Recorder()
  const cpu0 = d.servers.reduce((s, p) => s + cpuMs(p.pid), 0)
  const t0 = process.hrtime.bigint()
  const deadline = Date.now() + o.durationMs
  let started = 0
  let done = 0
  const worker = async (): Promise<void> => {
    while (Date.now() < deadline && started < o.maxLifecycles) {
      const i = started++
      try {
        await lifecycle(d, i, rec, o)
        done++
      } catch (e) {
        rec.error(e)
        if (rec.errors > 20 && rec.errors > done) throw new Error(`${d.name}: too many failed lifecycles, e.g. ${rec.errorMessages.join(' | ')}`)
      }
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, worker))
  const seconds = msSince(t0) / 1000
  const cpu = d.servers.reduce((s, p) => s + cpuMs(p.pid), 0) - cpu0
  return {
    driver: d.name, concurrency: o.concurrency, lifecycles: done, seconds, perSecond: done / seconds,
    cpuMsPerLifecycle: done > 0 ? cpu / done : NaN, rec,
  }
}
