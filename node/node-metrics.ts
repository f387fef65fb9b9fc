// The node plugin's own metrics. Gauges are computed when scraped, from the mount index, the
// store and one statfs, so they cost nothing on the RPC path and can never drift.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { Store } from '../common/store/types.js'
import type { NodeDeps } from './deps.js'
import type { Mounter } from './mounter.js'
import type { OrphanWatch } from './orphans.js'

// mount(2)/umount2(2) take microseconds; a slow one (a busy kernel, a stuck filesystem) is
// exactly what these buckets must show.
const SYSCALL_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1]

/** A Mounter that times bind (with its flags) and unmount. */
export function instrumentMounter(m: Mounter, registry: Registry): Mounter {
  const h = new Histogram({
    name: 'tscsi_node_mount_syscall_duration_seconds',
    help: 'Time spent in the mount syscalls of one bind (flags included) or one unmount.',
    labelNames: ['op'],
    buckets: SYSCALL_BUCKETS,
    registers: [registry],
  })
  const timed = <A extends unknown[]>(op: string, fn: (...a: A) => void) => (...a: A): void => {
    const end = h.startTimer({ op })
    try {
      fn(...a)
    } finally {
      end()
    }
  }
  return { ...m, bind: timed('bind', m.bind.bind(m)), unmount: timed('unmount', m.unmount.bind(m)) }
}

export interface NodeMetrics {
  reconcileError(): void
}

export function nodeMetrics(registry: Registry, store: Store, d: NodeDeps, orphans?: OrphanWatch): NodeMetrics {
  if (orphans) {
    new Gauge({
      name: 'tscsi_node_orphaned_data',
      help: 'Volume directories, images and snapshot copies in a pool that no store object owns, as of the last scan.',
      labelNames: ['pool', 'kind'],
      registers: [registry],
      collect() {
        this.reset()
        for (const o of orphans.current()) this.inc({ pool: o.pool, kind: o.kind })
      },
    })
  }
  const errors = new Counter({ name: 'tscsi_node_reconcile_errors_total', help: 'Volumes the node plugin failed to realise or remove.', registers: [registry] })
  const mine = async () => (await store.volumes.list()).filter((v) => v.spec.node === d.nodeId)
  new Gauge({
    name: 'tscsi_node_volumes',
    help: 'Volumes held by this node, by kind and state (mounted, ready, failed, deleting).',
    labelNames: ['kind', 'state'],
    registers: [registry],
    async collect() {
      this.reset()
      const mounted = new Set(d.index.volumes())
      for (const v of await mine()) {
        const state = v.spec.deletionRequestedAt ? 'deleting' : mounted.has(v.id) ? 'mounted' : v.status?.phase === 'Failed' ? 'failed' : 'ready'
        this.inc({ kind: v.spec.kind, state })
      }
    },
  })
  const pool = (name: string, help: string, value: (total: bigint, free: bigint, allocated: bigint) => bigint) =>
    new Gauge({
      name, help, labelNames: ['node', 'pool'], registers: [registry],
      async collect() {
        const volumes = await mine()
        for (const [p, root] of d.layout.pools) {
          const fs = d.mounter.statfs(root)
          const unit = BigInt(fs.fragmentSize || fs.blockSize)
          const allocated = volumes.filter((v) => v.spec.pool === p).reduce((s, v) => s + BigInt(v.spec.capacityBytes), 0n)
          this.set({ node: d.nodeId, pool: p }, Number(value(fs.blocks * unit, fs.bavail * unit, allocated)))
        }
      },
    })
  pool('tscsi_pool_total_bytes', 'Size of the filesystem holding the pool.', (t) => t)
  pool('tscsi_pool_free_bytes', 'Bytes the pool\'s filesystem can still take.', (_t, f) => f)
  pool('tscsi_pool_allocated_bytes', 'Bytes promised to volumes in the pool (sum of their capacities).', (_t, _f, a) => a)
  new Gauge({
    name: 'tscsi_volume_capacity_bytes',
    help: 'Capacity of each volume held by this node.',
    labelNames: ['volume_id', 'kind', 'node'],
    registers: [registry],
    async collect() {
      this.reset()
      for (const v of await mine()) if (!v.spec.deletionRequestedAt) this.set({ volume_id: v.id, kind: v.spec.kind, node: d.nodeId }, Number(v.spec.capacityBytes))
    },
  })
  return { reconcileError: () => errors.inc() }
}

export const noNodeMetrics: NodeMetrics = { reconcileError: () => {} }
