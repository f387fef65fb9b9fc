// ControllerPublishVolume / ControllerUnpublishVolume, served only with --enable-attach. A local
// volume is usable on its own node only, so "attaching" is bookkeeping: it records which node
// may use the volume, which lets clusters that want VolumeAttachment objects (and the
// external-attacher) have them, and it refuses every other node with a reason. An nfs volume
// may be published to any registered node.
import { parseCapability } from '../common/capability.js'
import { alreadyExists, exhausted, failedPrecondition, invalid, notFound } from '../common/errors.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { checkString, ownIdOrUndefined, requireId, requireString } from '../common/validate.js'
import type { ControllerDeps } from './deps.js'
import { onItsNode } from '../common/store/model.js'
import { capabilitiesMatch } from './request.js'

export function publishHandlers(d: ControllerDeps): Implemented<'Controller', 'ControllerPublishVolume' | 'ControllerUnpublishVolume'> {
  async function ControllerPublishVolume(req: RequestOf<'Controller', 'ControllerPublishVolume'>): Promise<ResponseOf<'Controller', 'ControllerPublishVolume'>> {
    // validate
    requireString('volume_id', req.volume_id)
    const nodeId = requireString('node_id', req.node_id)
    const cap = parseCapability('volume_capability', req.volume_capability)
    const readonly = Boolean(req.readonly)
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run(id, `volume ${id}`, async (): Promise<ResponseOf<'Controller', 'ControllerPublishVolume'>> => {
      const obj = await d.store.volumes.refresh(id)
      if (!obj || obj.spec.deletionRequestedAt) throw notFound(`volume ${id} does not exist`)
      const node = await d.store.nodes.get(nodeId)
      if (!node) throw notFound(`node ${JSON.stringify(nodeId)} is not registered with this driver`)
      const why = capabilitiesMatch(obj.spec, [cap])
      if (why) throw invalid('volume_capability', why)
      if (onItsNode(obj.spec) && obj.spec.node !== nodeId) {
        throw failedPrecondition(`volume ${id} lives on node ${obj.spec.node}; a node-local volume cannot be published to node ${nodeId}`)
      }
      const pubs = obj.spec.publications ?? {}
      const existing = pubs[nodeId]
      if (existing) {
        if (existing.readonly !== readonly || existing.mode !== cap.mode) {
          throw alreadyExists(`volume ${id} is already published to node ${nodeId} with readonly=${existing.readonly}, mode ${existing.mode}`)
        }
        return { publish_context: {} }
      }
      if (node.spec.maxVolumes > 0) {
        const all = await d.store.volumes.list()
        const count = all.filter((v) => v.spec.publications?.[nodeId]).length
        if (count >= node.spec.maxVolumes) throw exhausted(`node ${nodeId} already has its maximum of ${node.spec.maxVolumes} volumes published`)
      }
      // Publications do not change what the node realises, so the generation stays put.
      await d.store.volumes.putSpec(id, { ...obj.spec, publications: { ...pubs, [nodeId]: { readonly, mode: cap.mode } } })
      return { publish_context: {} }
    })
  }

  async function ControllerUnpublishVolume(req: RequestOf<'Controller', 'ControllerUnpublishVolume'>): Promise<ResponseOf<'Controller', 'ControllerUnpublishVolume'>> {
    const id = ownIdOrUndefined('volume_id', req.volume_id, 'v')
    const nodeId = typeof req.node_id === 'string' ? checkString('node_id', req.node_id) : ''
    // A volume that does not exist is not published anywhere: detaching it has nothing to do.
    // (csi-sanity's cleanup and the external-attacher both rely on this being OK.)
    if (!id) return {}
    return d.locks.run(id, `volume ${id}`, async (): Promise<ResponseOf<'Controller', 'ControllerUnpublishVolume'>> => {
      const obj = await d.store.volumes.refresh(id)
      if (!obj) return {}
      const pubs = { ...(obj.spec.publications ?? {}) }
      // An empty node_id means "from every node", as the spec allows.
      const targets = nodeId === '' ? Object.keys(pubs) : [nodeId]
      let changed = false
      for (const n of targets) if (n in pubs) { delete pubs[n]; changed = true }
      if (changed) await d.store.volumes.putSpec(id, { ...obj.spec, publications: pubs })
      return {}
    })
  }

  return { ControllerPublishVolume, ControllerUnpublishVolume }
}
