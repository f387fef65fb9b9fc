// The controller's own metrics: volumes by phase (read from the store at scrape time, so they
// can never drift), time for a node to act, and operations waiting on nodes.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Store } from '../common/store/types.js'
import { LATENCY_BUCKETS } from '../common/process-metrics.js'

export interface ControllerMetrics {
  /** Wraps a wait for a node: counts it as pending and times it. */
  timeNode<T>(operation: 'create' | 'delete' | 'expand', wait: () => Promise<T>): Promise<T>
  /** One round of a ledger group commit: the claims and releases it carried, the ledgers written. */
  ledgerCommit(ops: number, writes: number): void
}

export function volumePhase(spec: { deletionRequestedAt?: string; generation: number }, status?: { phase: string; observedGeneration: number }): string {
  if (spec.deletionRequestedAt) return 'Deleting'
  if (!status || status.observedGeneration < spec.generation) return 'Pending'
  return status.phase
}

export function controllerMetrics(registry: Registry, store: Store): ControllerMetrics {
  const pending = new Gauge({ name: 'tscsi_controller_pending_operations', help: 'Controller operations waiting for a node plugin to act.', registers: [registry] })
  const realise = new Histogram({
    name: 'tscsi_controller_realise_duration_seconds',
    help: 'Time from recording a change in the store to the node plugin reporting it done.',
    labelNames: ['operation'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  })
  const batch = new Histogram({
    name: 'tscsi_controller_ledger_commit_operations',
    help: 'Claims and releases carried by one group commit of the node ledgers (one write per node touched).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [registry],
  })
  const writes = new Counter({ name: 'tscsi_controller_ledger_writes_total', help: 'Ledger document writes attempted by group commits (one per node touched per round).', registers: [registry] })
  new Gauge({
    name: 'tscsi_controller_volumes',
    help: 'Volumes in the store, by phase.',
    labelNames: ['phase'],
    registers: [registry],
    async collect() {
      this.reset()
      const counts: Record<string, number> = { Pending: 0, Ready: 0, Failed: 0, Deleting: 0 }
      for (const v of await store.volumes.list()) {
        const p = volumePhase(v.spec, v.status)
        counts[p] = (counts[p] ?? 0) + 1
      }
      for (const [phase, n] of Object.entries(counts)) this.set({ phase }, n)
    },
  })
  return {
    ledgerCommit(ops, written) {
      batch.observe(ops)
      writes.inc(written)
    },
    async timeNode(operation, wait) {
      pending.inc()
      const end = realise.startTimer({ operation })
      try {
        return await wait()
      } finally {
        end()
        pending.dec()
      }
    },
  }
}

/** For service tests that do not look at metrics. */
export const noControllerMetrics: ControllerMetrics = { timeNode: (_op, wait) => wait(), ledgerCommit: () => undefined }
