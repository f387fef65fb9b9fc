// What the controller's handlers need, injected so service tests can swap any of it.
import type { Logger } from '../common/log.js'
import { Mutexes, TryLocks } from '../common/lock.js'
import type { Store } from '../common/store/types.js'
import { noControllerMetrics, type ControllerMetrics } from './controller-metrics.js'

export interface ControllerDeps {
  store: Store
  log: Logger
  /** How long an RPC waits for the node plugin to realise or remove a volume. */
  realiseTimeoutMs: number
  /** Serve ControllerPublish/Unpublish (the attach/detach flow with VolumeAttachments). */
  enableAttach: boolean
  clock: () => Date
  /** Per-volume locks: a concurrent call on the same volume gets ABORTED. */
  locks: TryLocks
  /**
   * Placement queues inside this process, so its own creates never collide on the ledger; across
   * processes the ledger's compare-and-swap decides (claims.ts).
   */
  placement: Mutexes
  metrics: ControllerMetrics
}

export function controllerDeps(p: Pick<ControllerDeps, 'store' | 'log' | 'realiseTimeoutMs' | 'enableAttach'> & Partial<ControllerDeps>): ControllerDeps {
  return { clock: () => new Date(), locks: new TryLocks(), placement: new Mutexes(), metrics: noControllerMetrics, ...p }
}
