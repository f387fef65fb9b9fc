// Volumes whose node has left (its TscsiNode object is gone) cannot be served or deleted by
// anyone. The controller looks for them periodically and says so where operators look: a log
// line and an event on the PersistentVolume (once per volume), and a gauge for alerts.
//
// Every controller replica runs the check, but the report is made once, not once per replica:
// the ledger document `lost-volumes` records which volumes were reported and which replica is the
// reporter. A replica reports a volume only if its compare-and-swap added the volume's mark, so
// two replicas checking at the same instant cannot both report it, and a new reporter after a
// failover does not repeat what the old one said. Only the reporter exports a non-zero gauge, so
// sum() over the replicas' series is the number of lost volumes. The reporter role is renewed at
// every check and taken over once it is three intervals old; a lapse there delays a report, it
// never doubles one.
import { Gauge, type Registry } from 'prom-client'
import { PV_NAME_KEY } from '../common/keys.js'
import type { Logger } from '../common/log.js'
import { onItsNode, type LedgerDoc } from '../common/store/model.js'
import type { LedgerChange, Store, VolumeObject } from '../common/store/types.js'

export const LOST_REPORT_ID = 'lost-volumes'

export async function lostVolumes(store: Store): Promise<VolumeObject[]> {
  const nodes = new Set((await store.nodes.list()).map((n) => n.id))
  // An nfs volume's data is on the export, not on the node that made its directory.
  return (await store.volumes.list()).filter((v) => onItsNode(v.spec) && !nodes.has(v.spec.node))
}

export interface LostReport {
  reporter: boolean
  /** The lost volumes this call is to report. */
  fresh: VolumeObject[]
}

/**
 * The next `lost-volumes` document: as reporter (unless another replica holds a live role),
 * marking volumes newly lost and unmarking the settled ones (their node came back, or they are
 * gone). Pure: the ledger may call it again on a newer document.
 */
export function planLostReport(doc: LedgerDoc | undefined, lost: VolumeObject[], settled: ReadonlySet<string>, me: string, now: Date, leaseMs: number): LedgerChange<LedgerDoc, LostReport> {
  const holder = doc?.reporter
  if (holder && holder.id !== me && Date.parse(holder.renewedAt) + leaseMs > now.getTime()) return { result: { reporter: false, fresh: [] } }
  const reported = { ...doc?.reported }
  for (const id of settled) delete reported[id]
  const fresh = lost.filter((v) => !reported[v.id])
  for (const v of fresh) reported[v.id] = { node: v.spec.node, at: now.toISOString() }
  return { next: { ...doc, reported, reporter: { id: me, renewedAt: now.toISOString() } }, result: { reporter: true, fresh } }
}

export interface LostNodeWatchOptions {
  /** This replica's name in the ledger (host name and pid). */
  id: string
  intervalMs: number
  registry?: Registry
  clock?: () => Date
}

export class LostNodeWatch {
  private timer: NodeJS.Timeout | undefined
  private reporter = false

  constructor(private readonly store: Store, private readonly log: Logger, private readonly o: LostNodeWatchOptions) {
    if (o.registry) {
      const self = this
      new Gauge({
        name: 'tscsi_controller_lost_node_volumes',
        help: 'Volumes whose node is no longer registered (their data is unreachable). Exported by the reporting replica; the others say 0.',
        registers: [o.registry],
        async collect() {
          this.set(self.reporter ? (await lostVolumes(store)).length : 0)
        },
      })
    }
  }

  start(): void {
    this.timer = setInterval(() => this.check().catch((e) => this.log.warn({ err: e }, 'lost-node check failed')), this.o.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /** Reports each newly lost volume once across all replicas; returns the ids this call reported. */
  async check(): Promise<string[]> {
    const now = (this.o.clock ?? (() => new Date()))()
    // A watch cache can lag: a node is confirmed gone, and a mark confirmed settled, by fresh reads.
    const gone = new Map<string, boolean>()
    const isGone = async (node: string): Promise<boolean> => {
      if (!gone.has(node)) gone.set(node, (await this.store.nodes.refresh(node)) === undefined)
      return gone.get(node)!
    }
    const lost: VolumeObject[] = []
    for (const v of await lostVolumes(this.store)) if (await isGone(v.spec.node)) lost.push(v)
    const lostIds = new Set(lost.map((v) => v.id))
    const settled = new Set<string>()
    for (const id of Object.keys((await this.store.ledger.get(LOST_REPORT_ID))?.reported ?? {})) {
      if (lostIds.has(id)) continue
      const v = await this.store.volumes.refresh(id)
      if (!v || !(await isGone(v.spec.node))) settled.add(id)
    }
    const out = await this.store.ledger.update(LOST_REPORT_ID, (doc) => planLostReport(doc, lost, settled, this.o.id, now, 3 * this.o.intervalMs))
    this.reporter = out.reporter
    this.log.debug({ reporter: out.reporter, lost: lost.length, reported: out.fresh.length }, 'lost-node check')
    for (const v of out.fresh) {
      const message = `volume ${v.id} (${v.spec.name}) lives on node ${v.spec.node}, which is no longer registered; its data is unreachable`
      this.log.warn({ volume_id: v.id, node: v.spec.node }, message)
      const pv = v.spec.parameters[PV_NAME_KEY] ?? v.spec.name
      await this.store.events?.warnPersistentVolume(pv, 'NodeLost', message)
    }
    return out.fresh.map((v) => v.id)
  }
}
