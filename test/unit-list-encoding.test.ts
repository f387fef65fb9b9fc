// controller/list-encoding.ts: a ListVolumes answer assembled from per-entry bytes must be the
// very bytes the whole-message encoder writes, and must decode to the same answer.
import t from 'tap'
import { csiPackage } from '../common/grpc.js'
import { reusingEntryBytes } from '../controller/list-encoding.js'
import { csiVolume, publishedNodes, volumeCondition } from '../controller/request.js'
import type { VolumeObject } from '../common/store/types.js'
import type { ListVolumesResponse } from '../proto/gen/csi/v1/ListVolumesResponse.js'

const def = csiPackage().Controller.service.ListVolumes

function entry(i: number, over: Partial<VolumeObject['spec']> = {}): NonNullable<ListVolumesResponse['entries']>[number] {
  const v: VolumeObject = {
    id: `v-${String(i).padStart(4, '0')}`,
    spec: {
      name: `pvc-${i}`, node: `node-${i % 3}`, kind: i % 2 ? 'image' : 'dir', pool: 'default', capacityBytes: String(2 ** 33 + i), accessType: 'mount', fsType: 'ext4',
      parameters: {}, createdAt: '', generation: 1, ...(i % 4 === 0 && { publications: { 'node-9': { readonly: true, mode: 'SINGLE_NODE_WRITER' } } }), ...over,
    },
    ...(i % 5 !== 0 && { status: { phase: i % 7 ? 'Ready' : 'Failed', observedGeneration: 1, updatedAt: '', quota: 'enforced', message: 'ünïcode' } }),
  }
  return { volume: csiVolume(v), status: { published_node_ids: publishedNodes(v.spec), volume_condition: volumeCondition(v.status, i % 6 !== 0) } }
}

t.test('the assembled answer is byte for byte the whole message, with and without a token', async (t) => {
  const encode = reusingEntryBytes(def.responseSerialize)
  const entries = Array.from({ length: 40 }, (_, i) => entry(i))
  for (const res of [{ entries, next_token: '' }, { entries, next_token: 'v-0039' }, { entries: [], next_token: '' }, { entries: entries.slice(0, 1), next_token: 'v-0000' }]) {
    const want = def.responseSerialize(res)
    t.same(encode(res), want, `${res.entries.length} entries, token ${JSON.stringify(res.next_token)}: first time`)
    t.same(encode(res), want, 'again, from the kept bytes')
    t.same(def.responseDeserialize(encode(res)), def.responseDeserialize(want), 'and it decodes the same')
  }
})

t.test('a changed volume is a new entry object and is encoded afresh', async (t) => {
  const encode = reusingEntryBytes(def.responseSerialize)
  const entries = [entry(1), entry(2)]
  encode({ entries, next_token: '' })
  const changed = [entries[0]!, entry(2, { capacityBytes: '1' })]
  t.same(encode({ entries: changed, next_token: '' }), def.responseSerialize({ entries: changed, next_token: '' }))
})
