// The controller's side of kind: nfs against a real LocalStore, with node plugins that are
// registered but not running (this host's kernel has no NFS client, so no node could make a
// directory; test/vm/nfs-volumes.vm.ts runs the whole path against a real nfsd). What is checked
// here is the controller alone: which node it asks, what it records, what it refuses.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import path from 'node:path'
import { snapshotIdFor, volumeIdFor } from '../common/ids.js'
import { silentLogger } from '../common/log.js'
import { GiB } from '../common/sizes.js'
import { LocalStore } from '../common/store/local.js'
import type { VolumeKind, VolumeSpec } from '../common/store/model.js'
import { controllerDeps } from '../controller/deps.js'
import { expandHandlers } from '../controller/expand.js'
import { publishHandlers } from '../controller/publish.js'
import { snapshotHandlers } from '../controller/snapshots.js'
import { volumeHandlers } from '../controller/volumes.js'
import { handler, mountCap, rejectsCsi, type TT } from './helpers/csi.js'

const NEVER = 3_600_000
const where = { server: 'nfs.example.com', share: '/export', subDir: 'shop/data' }

async function controller(t: TT, nodes: [string, VolumeKind[]][]) {
  const dir = t.testdir({ state: {} })
  const log = silentLogger()
  const store = await LocalStore.open(path.join(dir, 'state'), log, NEVER)
  t.teardown(() => store.close())
  for (const [id, kinds] of nodes) {
    await store.nodes.putSpec(id, { topology: { 'topology.tscsi.dev/node': id }, maxVolumes: 0, kinds, pools: ['default'] })
    await store.nodes.putStatus(id, { pools: { default: { totalBytes: String(10n * GiB), availableBytes: String(10n * GiB) } }, updatedAt: new Date().toISOString() })
  }
  const d = controllerDeps({ store, log, realiseTimeoutMs: 300, enableAttach: true })
  const h = { ...volumeHandlers(d), ...publishHandlers(d), ...expandHandlers(d), ...snapshotHandlers(d) }
  return { store, call: (name: string, req: Record<string, unknown>): Promise<any> => handler(h, name)(req) }
}

const nfsSpec = (name: string, node: string, subDir = where.subDir): VolumeSpec => ({
  name, node, kind: 'nfs', pool: 'default', capacityBytes: String(GiB), accessType: 'mount', parameters: { kind: 'nfs', server: where.server, share: where.share },
  createdAt: new Date().toISOString(), generation: 1, nfs: { ...where, subDir },
})
const ready = { phase: 'Ready' as const, observedGeneration: 1, updatedAt: new Date().toISOString() }
const createReq = (name: string, parameters: Record<string, string>, mode = 'MULTI_NODE_MULTI_WRITER') =>
  ({ name, capacity_range: { required_bytes: String(GiB), limit_bytes: '0' }, volume_capabilities: [mountCap(mode, ['nfsvers=4.2'])], parameters, secrets: {}, mutable_parameters: {} })

t.test('CreateVolume: one of the nodes that serve nfs is asked, the class\'s options recorded, no claim made', async (t) => {
  const c = await controller(t, [['a', ['dir', 'image', 'nfs']], ['old', ['dir', 'image']]])
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { kind: 'nfs', ...where, subDir: '${pv.name}' })), status.DEADLINE_EXCEEDED, /node a did not create/, 'no plugin runs: the bounded wait ends')
  const v = await c.store.volumes.get(volumeIdFor('pvc-1'))
  t.equal(v?.spec.node, 'a', 'the node that serves nfs, not the one that does not')
  t.same(v?.spec.nfs, { server: where.server, share: where.share, subDir: 'pvc-1', mountOptions: ['nfsvers=4.2'] })
  t.same(await c.store.ledger.get('node.a'), undefined, 'no room claimed on the node: the data is on the export')
})

t.test('CreateVolume refuses what cannot work, by name', async (t) => {
  const c = await controller(t, [['old', ['dir', 'image']]])
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { kind: 'nfs', ...where })), status.FAILED_PRECONDITION, /no registered node serves nfs volumes/)
  const c2 = await controller(t, [['a', ['dir', 'image', 'nfs']]])
  await c2.store.volumes.create(volumeIdFor('pvc-held'), nfsSpec('pvc-held', 'a'))
  await rejectsCsi(t, c2.call('CreateVolume', createReq('pvc-2', { kind: 'nfs', ...where, subDir: 'shop' })), status.INVALID_ARGUMENT, /overlaps volume/, 'a directory holding another volume\'s')
  await rejectsCsi(t, c2.call('CreateVolume', createReq('pvc-3', { kind: 'nfs', ...where, subDir: 'shop/data/x' })), status.INVALID_ARGUMENT, /overlaps volume/, 'one inside another volume\'s')
  await rejectsCsi(t, c2.call('CreateVolume', { ...createReq('pvc-4', { kind: 'nfs', ...where }), volume_capabilities: [{ block: {}, access_type: 'block', access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }] }),
    status.INVALID_ARGUMENT, /block access is not supported/)
  await rejectsCsi(t, c2.call('CreateVolume', { ...createReq('pvc-5', { kind: 'dir' }, 'SINGLE_NODE_WRITER'), volume_content_source: { volume: { volume_id: volumeIdFor('pvc-held') } } }),
    status.INVALID_ARGUMENT, /holds nfs data; it is restored or cloned only into an nfs volume/, 'nfs data into a dir volume')
  await rejectsCsi(t, c2.call('CreateVolume', { ...createReq('pvc-6', { kind: 'nfs', server: 'other', share: '/export' }), volume_content_source: { volume: { volume_id: volumeIdFor('pvc-held') } } }),
    status.INVALID_ARGUMENT, /the copy is made within one export/, 'a clone onto another export')
})

t.test('DeleteVolume: a gone node hands the directory\'s removal to one that is here', async (t) => {
  const c = await controller(t, [['a', ['dir', 'image', 'nfs']]])
  const id = volumeIdFor('pvc-1')
  await c.store.volumes.create(id, nfsSpec('pvc-1', 'gone'))
  await rejectsCsi(t, c.call('DeleteVolume', { volume_id: id }), status.DEADLINE_EXCEEDED, /node a did not delete/)
  const v = await c.store.volumes.get(id)
  t.equal(v?.spec.node, 'a', 'the removal is node a\'s now')
  t.ok(v?.spec.deletionRequestedAt, 'and it is asked for')
  // A node-local volume whose node is gone is another matter: nobody can reach its data.
  await c.store.volumes.create(volumeIdFor('pvc-local'), { ...nfsSpec('pvc-local', 'gone'), kind: 'dir', nfs: undefined } as unknown as VolumeSpec)
  await rejectsCsi(t, c.call('DeleteVolume', { volume_id: volumeIdFor('pvc-local') }), status.FAILED_PRECONDITION, /no longer registered/)
})

t.test('publish to any node, expansion recorded, snapshots on the export, no topology', async (t) => {
  const c = await controller(t, [['a', ['dir', 'image', 'nfs']], ['b', ['dir', 'image', 'nfs']]])
  const id = volumeIdFor('pvc-1')
  await c.store.volumes.create(id, nfsSpec('pvc-1', 'a'))
  await c.store.volumes.putStatus(id, ready)
  const pub = (node: string) => c.call('ControllerPublishVolume', { volume_id: id, node_id: node, volume_capability: mountCap('MULTI_NODE_MULTI_WRITER'), readonly: false, secrets: {}, volume_context: {} })
  await pub('a')
  await pub('b')
  t.same(Object.keys((await c.store.volumes.get(id))!.spec.publications ?? {}).sort(), ['a', 'b'], 'published to both nodes')
  const got = await c.call('ControllerGetVolume', { volume_id: id })
  t.same(got.volume.accessible_topology, [])
  t.same(got.status.published_node_ids, ['a', 'b'])
  t.equal(got.status.volume_condition.abnormal, false)

  const grown = await c.call('ControllerExpandVolume', { volume_id: id, capacity_range: { required_bytes: String(2n * GiB), limit_bytes: '0' }, secrets: {} })
  t.same(grown, { capacity_bytes: String(2n * GiB), node_expansion_required: false }, 'recorded, nothing for a node to do')
  t.equal((await c.store.volumes.get(id))!.spec.capacityBytes, String(2n * GiB))

  const sid = snapshotIdFor('snap-1')
  await rejectsCsi(t, c.call('CreateSnapshot', { name: 'snap-1', source_volume_id: id, parameters: {}, secrets: {} }), status.DEADLINE_EXCEEDED, undefined, 'no plugin runs to copy it')
  const snap = await c.store.snapshots.get(sid)
  t.same(snap?.spec.nfs, { ...where, subDir: `.tscsi-snapshots/${sid}` }, 'the copy goes to the export\'s snapshots folder')
  t.equal(snap?.spec.node, 'a', 'made by the node that made the volume')
})
