// Volumes whose node has left (its TscsiNode object is gone) cannot be served or deleted by
// anyone. The controller looks for them periodically and says so where operators look: a log
// line and an event on the PersistentVolume (once per volume), and a gauge for alerts.
import { Gauge, type Registry } from 'prom-client'
import type { Logger } from '../common/log.js'
import type { Store, VolumeObject } from '../common/store/types.js'

export async function lostVolumes(store: Store): Promise<VolumeObject[]> {
  const nodes = new Set((await store.nodes.list()).map((n) => n.id))
  return (await store.volumes.list()).filter((v) => !nodes.has(v.spec.node))
}

export class LostNodeWatch {
  private readonly reported = new Set<string>()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly store: Store, private readonly log: Logger, registry?: Registry) {
    if (registry) {
      new Gauge({
        name: 'tscsi_controller_lost_node_volumes',
        help: 'Volumes whose node is no longer registered (their data is unreachable).',
        registers: [registry],
        async collect() {
          this.set((await lostVolumes(store)).length)
        },
      })
    }
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.check().catch((e) => this.log.warn({ err: e }, 'lost-node check failed')), intervalMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /** Reports each newly lost volume once; returns the ids reported this time. */
  async check(): Promise<string[]> {
    const lost = await lostVolumes(this.store)
    const now = new Set(lost.map((v) => v.id))
    for (const id of this.reported) if (!now.has(id)) this.reported.delete(id) // node came back
    const fresh = lost.filter((v) => !this.reported.has(v.id))
    for (const v of fresh) {
      this.reported.add(v.id)
      const message = `volume ${v.id} (${v.spec.name}) lives on node ${v.spec.node}, which is no longer registered; its data is unreachable`
      this.log.warn({ volume_id: v.id, node: v.spec.node }, message)
      const pv = v.spec.parameters['csi.storage.k8s.io/pv/name'] ?? v.spec.name
      await this.store.events?.warnPersistentVolume(pv, 'NodeLost', message)
    }
    return fresh.map((v) => v.id)
  }
}
