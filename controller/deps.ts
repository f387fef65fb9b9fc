// What the controller's handlers need, injected so service tests can swap any of it.
import type { Logger } from '../common/log.js'
import { GroupCommit, TryLocks } from '../common/lock.js'
import type { Store } from '../common/store/types.js'
import { commitLedger, type Claimed, type LedgerOp } from './claims.js'
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
   * Claims and releases queue inside this process and are written as group commits, so its own
   * creates never collide on the ledger; across processes the ledger's compare-and-swap decides
   * (claims.ts).
   */
  placement: GroupCommit<LedgerOp, Claimed | undefined>
  metrics: ControllerMetrics
}

export function controllerDeps(p: Pick<ControllerDeps, 'store' | 'log' | 'realiseTimeoutMs' | 'enableAttach'> & Partial<ControllerDeps>): ControllerDeps {
  const d: ControllerDeps = {
    clock: () => new Date(), locks: new TryLocks(), metrics: noControllerMetrics, ...p,
    placement: p.placement ?? new GroupCommit((ops) => commitLedger(d, ops)),
  }
  return d
}
