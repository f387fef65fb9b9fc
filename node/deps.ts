// What the node's handlers need, injected so service tests can swap the kernel for a fake.
import { TryLocks } from '../common/lock.js'
import type { Logger } from '../common/log.js'
import type { Layout } from './layout.js'
import type { Mounter } from './mounter.js'
import { MountIndex } from './mountindex.js'
import type { QuotaOps } from './quota.js'
import { StagingNotes } from './staging-notes.js'

export interface NodeDeps {
  nodeId: string
  /** 0 means no limit is reported to the CO. */
  maxVolumes: number
  layout: Layout
  mounter: Mounter
  index: MountIndex
  /** Keyed by volume (stage/unstage) and by volume+target (publish/unpublish). */
  locks: TryLocks
  log: Logger
  /** Project quotas; absent where none can be set up (tests without the kernel). */
  quota?: QuotaOps
  /**
   * Folders CO paths must resolve into (symlinks in their parents resolved): kubelet's
   * directory in a cluster. Empty means no such restriction (service tests).
   */
  coPathPrefixes: string[]
  /** Folders of ours no CO path may touch besides the pools (the state dir). */
  privateRoots: string[]
  /** Which mount of a volume is its staging mount (the kernel cannot tell binds apart). */
  staged: StagingNotes
}

export function nodeDeps(p: Pick<NodeDeps, 'nodeId' | 'maxVolumes' | 'layout' | 'mounter' | 'log'> & Partial<NodeDeps>): NodeDeps {
  return { index: new MountIndex(), locks: new TryLocks(), coPathPrefixes: [], privateRoots: [], staged: new StagingNotes(p.layout), ...p }
}
