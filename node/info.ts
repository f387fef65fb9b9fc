// NodeGetInfo, NodeGetCapabilities and NodeGetVolumeStats.
import { invalid, notFound } from '../common/errors.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { topologyOf } from '../common/keys.js'
import { checkString, requireId, requirePath, requireString } from '../common/validate.js'
import { statSync } from 'node:fs'
import { getProjectId } from '../native/index.js'
import { belongsTo, locate } from './locate.js'
import { exportStats } from './nfs.js'
import type { NodeDeps } from './deps.js'
import type { _csi_v1_NodeServiceCapability_RPC_Type__Output as NodeRpc } from '../proto/gen/csi/v1/NodeServiceCapability.js'
import type { VolumeUsage } from '../proto/gen/csi/v1/VolumeUsage.js'

export const NODE_CAPABILITIES: NodeRpc[] = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER', 'EXPAND_VOLUME']

export function infoHandlers(d: NodeDeps): Implemented<'Node', 'NodeGetVolumeStats' | 'NodeGetInfo' | 'NodeGetCapabilities'> {
  async function NodeGetVolumeStats(req: RequestOf<'Node', 'NodeGetVolumeStats'>): Promise<ResponseOf<'Node', 'NodeGetVolumeStats'>> {
    requireString('volume_id', req.volume_id)
    if (typeof req.volume_path !== 'string' || req.volume_path === '') throw invalid('volume_path', 'must not be empty')
    const volumePath = checkString('volume_path', req.volume_path, 4096)
    if (req.staging_target_path) requirePath('staging_target_path', req.staging_target_path)
    const id = requireId('volume_id', req.volume_id, 'v')
    // A relative path cannot be where a volume is mounted (csi-sanity expects NOT_FOUND); an
    // absolute one must be normalised like every CO path.
    if (volumePath.startsWith('/')) requirePath('volume_path', volumePath)
    const vol = locate(d, id)
    // A relative or odd path cannot be where this volume is mounted: it is simply not there.
    const at = volumePath.startsWith('/') ? d.mounter.inspect(volumePath) : undefined
    if (!at) throw notFound(`volume ${id} is not available at ${volumePath}: the path does not exist`)
    const mounted = at.isMountRoot && belongsTo(d, vol, at, volumePath)
    const condition = mounted
      ? { abnormal: false, message: 'volume is mounted and its data is present' }
      : { abnormal: true, message: `${volumePath} is not a mount of volume ${id} (it may have been unmounted behind the driver's back)` }
    if (vol.kind === 'image' && at.type !== 'dir') {
      // A block volume: the device's size is all there is to report.
      return { usage: [{ unit: 'BYTES', total: String(statSync(vol.path).size), available: '0', used: '0' }], volume_condition: condition }
    }
    if (vol.kind === 'dir' && d.quota?.support(vol.pool).supported) {
      // Under a project quota the volume's own numbers, not its filesystem's.
      const q = d.quota.usage(vol.pool, getProjectId(vol.path).projectId)
      const avail = (n: bigint, used: bigint) => (n > used ? n - used : 0n).toString()
      const usage: VolumeUsage[] = [{ unit: 'BYTES', total: q.limitBytes.toString(), available: avail(q.limitBytes, q.usedBytes), used: q.usedBytes.toString() }]
      if (q.limitInodes > 0n) usage.push({ unit: 'INODES', total: q.limitInodes.toString(), available: avail(q.limitInodes, q.usedInodes), used: q.usedInodes.toString() })
      return { usage, volume_condition: condition }
    }
    if (vol.kind === 'nfs') return mounted ? exportStats(volumePath) : { usage: [], volume_condition: condition }
    const fs = d.mounter.statfs(mounted || vol.kind === 'image' ? volumePath : vol.path)
    const unit = BigInt(fs.fragmentSize || fs.blockSize)
    // Without a quota a directory volume shares its filesystem, so these are the filesystem's
    // numbers (what `df` in the pod shows). Project quotas narrow them to the volume.
    return {
      usage: [
        { unit: 'BYTES', total: (fs.blocks * unit).toString(), available: (fs.bavail * unit).toString(), used: ((fs.blocks - fs.bfree) * unit).toString() },
        { unit: 'INODES', total: fs.files.toString(), available: fs.favail.toString(), used: (fs.files - fs.ffree).toString() },
      ],
      volume_condition: condition,
    }
  }

  async function NodeGetInfo(): Promise<ResponseOf<'Node', 'NodeGetInfo'>> {
    return {
      node_id: d.nodeId,
      max_volumes_per_node: String(d.maxVolumes),
      accessible_topology: { segments: topologyOf(d.nodeId) },
    }
  }

  async function NodeGetCapabilities(): Promise<ResponseOf<'Node', 'NodeGetCapabilities'>> {
    return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) }
  }

  return { NodeGetVolumeStats, NodeGetInfo, NodeGetCapabilities }
}
