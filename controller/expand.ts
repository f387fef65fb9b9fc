// ControllerExpandVolume: records the larger size; the node that holds the volume grows the
// image file (or, for a dir volume, the quota) and reports it, bounded, like a create. For an
// image the filesystem is grown afterwards by NodeExpandVolume, online, so the answer says so.
import { aborted, exhausted, invalid, notFound, outOfRange } from '../common/errors.js'
import { wholeMiB } from '../common/sizes.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { requireId, requireString } from '../common/validate.js'
import { awaitNodeAct } from './await.js'
import type { ControllerDeps } from './deps.js'
import { claimRoom, onlyNode } from './claims.js'
import { parseRange } from './request.js'

export function expandHandlers(d: ControllerDeps): Implemented<'Controller', 'ControllerExpandVolume'> {
  async function ControllerExpandVolume(req: RequestOf<'Controller', 'ControllerExpandVolume'>): Promise<ResponseOf<'Controller', 'ControllerExpandVolume'>> {
    requireString('volume_id', req.volume_id)
    if (!req.capacity_range) throw invalid('capacity_range', 'must be set')
    const range = parseRange(req.capacity_range)
    if (range.required === 0n && range.limit === 0n) throw invalid('capacity_range', 'required_bytes or limit_bytes must be set')
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run(id, `volume ${id}`, async (): Promise<ResponseOf<'Controller', 'ControllerExpandVolume'>> => {
      const obj = await d.store.volumes.refresh(id)
      if (!obj || obj.spec.deletionRequestedAt) throw notFound(`volume ${id} does not exist`)
      const s = obj.spec
      const image = s.kind === 'image'
      const cur = BigInt(s.capacityBytes)
      if (range.limit > 0n && range.limit < cur) throw outOfRange(`volume ${id} has ${cur} bytes; shrinking to ${range.limit} is not supported`)
      let want = range.required > 0n ? range.required : cur
      if (image) want = wholeMiB(want)
      if (range.limit > 0n && want > range.limit) throw outOfRange(`an image grows in whole MiB: ${want} bytes exceeds limit_bytes ${range.limit}`)
      if (s.kind === 'nfs') {
        // Nothing on a node or the export changes: the size is recorded, not enforced (README).
        if (want > cur) await d.store.volumes.putSpec(id, { ...s, capacityBytes: want.toString() })
        return { capacity_bytes: (want > cur ? want : cur).toString(), node_expansion_required: false }
      }
      if (want > cur) {
        // The larger size is claimed first, so no other controller promises the difference.
        const refuse = (free: bigint) => exhausted(`node ${s.node} has ${free - cur} bytes free in pool ${JSON.stringify(s.pool)}; growing volume ${id} by ${want - cur} needs more`)
        await claimRoom(d, { volumeId: id, pool: s.pool, bytes: want, ...(s.projectId !== undefined && { projectId: s.projectId }) }, onlyNode(s.node, want, refuse))
        await d.store.volumes.putSpec(id, { ...s, capacityBytes: want.toString(), generation: s.generation + 1 })
      }
      // A repeat of a call cut short after the size was recorded finds nothing to record, but
      // the node may not have grown the volume yet: it waits for the node all the same.
      const pending = !obj.status || obj.status.observedGeneration < s.generation
      if (want > cur || pending) {
        const out = await awaitNodeAct(d, id, 'expand')
        if ('err' in out) throw out.err
        if ('gone' in out) throw aborted(`volume ${id} was deleted while being expanded`)
      }
      return { capacity_bytes: (want > cur ? want : cur).toString(), node_expansion_required: image }
    })
  }
  return { ControllerExpandVolume }
}
