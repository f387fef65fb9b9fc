// The store in a cluster, assembled: one KubeCollection (kube.ts) per kind of custom resource,
// the ledger (kube-ledger.ts) and Warning events on PersistentVolumes. Loaded only for
// --store kubernetes (open.ts), since @kubernetes/client-node is large.
import { CoreV1Api, CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node'
import type { Logger } from '../log.js'
import { DATA_FINALIZER, KubeCollection, NODE_LABEL, type KubeCollectionOptions } from './kube.js'
import { KubeLedger } from './kube-ledger.js'
import type { ExportSpec, ExportStatus, LedgerDoc, NodeSpec, NodeStatus, SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from './model.js'
import { GROUP, KINDS, pluralOf, VERSION } from './resources.js'
import type { EventSink, Store } from './types.js'

interface HeldSpec {
  node: string
  generation: number
  deletionRequestedAt?: string
}

export interface KubeStoreOptions {
  kubeconfig?: string
  /** Node plugins watch only their own node's volumes. */
  nodeId?: string
}

export class KubeStore implements Store {
  readonly events: EventSink
  readonly ledger: KubeLedger<LedgerDoc>

  private constructor(
    readonly volumes: KubeCollection<VolumeSpec, VolumeStatus>,
    readonly nodes: KubeCollection<NodeSpec, NodeStatus>,
    readonly snapshots: KubeCollection<SnapshotSpec, SnapshotStatus>,
    readonly exports: KubeCollection<ExportSpec, ExportStatus>,
    private readonly api: CustomObjectsApi,
    kc: KubeConfig,
    core: CoreV1Api,
    log: Logger,
  ) {
    this.ledger = new KubeLedger<LedgerDoc>(api, kc, log)
    this.events = {
      async warnPersistentVolume(pvName, reason, message) {
        // PersistentVolumes are cluster-scoped; their events live in "default", as kubectl expects.
        const now = new Date()
        await core.createNamespacedEvent({
          namespace: 'default',
          body: {
            metadata: { generateName: `${pvName}.` },
            involvedObject: { apiVersion: 'v1', kind: 'PersistentVolume', name: pvName },
            reason, message, type: 'Warning', firstTimestamp: now, lastTimestamp: now, count: 1,
            source: { component: 'tscsi-controller' },
          },
        }).catch((e: unknown) => log.warn({ err: e, pv: pvName }, 'could not record an event'))
      },
    }
  }

  static async open(o: KubeStoreOptions, log: Logger): Promise<KubeStore> {
    const kc = new KubeConfig()
    if (o.kubeconfig) kc.loadFromFile(o.kubeconfig)
    else kc.loadFromDefault()
    const api = kc.makeApiClient(CustomObjectsApi)
    const core = kc.makeApiClient(CoreV1Api)
    // A node plugin's TscsiNode is owned by its Node, so it goes when the node leaves the
    // cluster; that is what marks the node's volumes as lost.
    let owner: object[] | undefined
    if (o.nodeId) {
      try {
        const node = await core.readNode({ name: o.nodeId })
        owner = [{ apiVersion: 'v1', kind: 'Node', name: o.nodeId, uid: node.metadata?.uid }]
      } catch (e) {
        log.warn({ err: e, node: o.nodeId }, 'no Node object of this name; the TscsiNode gets no owner')
      }
    }
    // Volumes and snapshots are data held by one node: labelled with it (node plugins watch only
    // theirs), kept by a finalizer until that node reports the data gone.
    // Objects a node acts on are labelled with it: a node plugin lists and watches only its own.
    const byNode = <S extends { node: string }, T>(plural: string, kind: string): KubeCollectionOptions<S, T> => ({
      plural,
      kind,
      ...(o.nodeId && { labelSelector: `${NODE_LABEL}=${o.nodeId}` }),
      labelsFor: (spec) => ({ [NODE_LABEL]: spec.node }),
    })
    const heldByNode = <S extends HeldSpec, T extends { phase: string }>(plural: string, kind: string): KubeCollectionOptions<S, T> => ({
      ...byNode<S, T>(plural, kind),
      finalizer: DATA_FINALIZER,
      releases: (status) => status.phase === 'Deleted',
      onDeleting: (spec, at) => (spec.deletionRequestedAt ? spec : { ...spec, deletionRequestedAt: at, generation: spec.generation + 1 }),
    })
    const watcher = new Watch(kc)
    const volumes = new KubeCollection<VolumeSpec, VolumeStatus>(api, watcher, heldByNode(pluralOf(KINDS.volume), KINDS.volume), log)
    const nodes = new KubeCollection<NodeSpec, NodeStatus>(api, watcher, { plural: pluralOf(KINDS.node), kind: KINDS.node, ownerReferences: () => owner }, log)
    const snapshots = new KubeCollection<SnapshotSpec, SnapshotStatus>(api, watcher, heldByNode(pluralOf(KINDS.snapshot), KINDS.snapshot), log)
    // An export is measured by the node it names, but holds no data there: labelled, no finalizer.
    const exports = new KubeCollection<ExportSpec, ExportStatus>(api, watcher, byNode(pluralOf(KINDS.export), KINDS.export), log)
    await volumes.open()
    await nodes.open()
    await snapshots.open()
    await exports.open()
    return new KubeStore(volumes, nodes, snapshots, exports, api, kc, core, log)
  }

  async healthy(): Promise<boolean> {
    try {
      await this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: pluralOf(KINDS.node), limit: 1 })
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    this.volumes.close()
    this.nodes.close()
    this.snapshots.close()
    this.exports.close()
    this.ledger.close()
  }
}
