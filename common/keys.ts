// The keys this driver and its CO read from each other's maps: the topology segment, the volume
// context CreateVolume hands to the node plugin, and the keys the CO itself adds. The controller
// writes the context and the node plugin reads it, so a key spelt two ways would be read as
// absent on one side, silently, with the default in its place.

/** The one topology segment this driver reports: the node that holds a volume's data. */
export const TOPOLOGY_KEY = 'topology.tscsi.dev/node'

/** The topology of a node, as NodeGetInfo reports it and volumes on that node carry it. */
export function topologyOf(nodeId: string): Record<string, string> {
  return { [TOPOLOGY_KEY]: nodeId }
}

/**
 * The volume context CreateVolume answers with. The node plugin reads kind (what to stage) and
 * fsType (to refuse a capability asking for another filesystem); node, pool and quota are for
 * people reading the PersistentVolume.
 */
export const CONTEXT = {
  kind: 'tscsi.dev/kind',
  node: 'tscsi.dev/node',
  pool: 'tscsi.dev/pool',
  fsType: 'tscsi.dev/fsType',
  quota: 'tscsi.dev/quota',
  // nfs volumes: what the node mounts, checked there again (node/nfs-options.ts), because a
  // PersistentVolume can be written by hand.
  server: 'tscsi.dev/server',
  share: 'tscsi.dev/share',
  subDir: 'tscsi.dev/subDir',
} as const

/** Keys the CO adds to parameters and volume context on its own (external-provisioner, kubelet). */
export const CO_KEY_PREFIX = 'csi.storage.k8s.io/'
/** The PersistentVolume's name, which external-provisioner adds with --extra-create-metadata. */
export const PV_NAME_KEY = `${CO_KEY_PREFIX}pv/name`
/** kubelet's mark on the context of a CSI ephemeral inline volume. */
export const EPHEMERAL_KEY = `${CO_KEY_PREFIX}ephemeral`
