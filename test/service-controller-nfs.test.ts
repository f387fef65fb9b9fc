// The controller's side of kind: nfs against a real LocalStore, with node plugins that are
// registered but not running (this host's kernel has no NFS client, so no node could make a
// directory; test/vm/nfs-volumes.vm.ts runs the whole path against a real nfsd). What is checked
// here is the controller alone: which node it asks, what it records, what it refuses. Where a
// node's answer is needed (GetCapacity), the test writes the status a node plugin would; the
// node's own measurement (mount, statfs) runs in the VM guest.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import path from 'node:path'
import { exportIdFor, snapshotIdFor, volumeIdFor } from '../common/ids.js'
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

async function controller(t: TT, nodes: [string, VolumeKind[]][], clock = () => new Date()) {
  const dir = t.testdir({ state: {} })
  const log = silentLogger()
  const store = await LocalStore.open(path.join(dir, 'state'), log, NEVER)
  t.teardown(() => store.close())
  for (const [id, kinds] of nodes) {
    await store.nodes.putSpec(id, { topology: { 'topology.tscsi.dev/node': id }, maxVolumes: 0, kinds, pools: ['default'] })
    await store.nodes.putStatus(id, { pools: { default: { totalBytes: String(10n * GiB), availableBytes: String(10n * GiB) } }, updatedAt: new Date().toISOString() })
  }
  const d = controllerDeps({ store, log, realiseTimeoutMs: 300, enableAttach: true, clock })
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

t.test('GetCapacity of an nfs class: a node that serves nfs measures the export; the answer is shared and kept 30 s', async (t) => {
  let now = Date.parse('2026-12-03T10:00:00Z')
  const c = await controller(t, [['a', ['dir', 'image', 'nfs']], ['old', ['dir', 'image']]], () => new Date(now))
  const id = exportIdFor(where.server, where.share, ['nfsvers=4.2'])
  const req = { parameters: { kind: 'nfs', server: where.server, share: where.share, subDir: '${pv.name}' }, volume_capabilities: [mountCap('MULTI_NODE_MULTI_WRITER', ['nfsvers=4.2'])] }
  // What node a's plugin does on each new generation (node/nfs.ts measureExport), by hand.
  let answers = 0
  const unwatch = c.store.exports.watch(async (changed) => {
    const x = await c.store.exports.get(changed)
    if (!x || (x.status && x.status.observedGeneration >= x.spec.generation)) return
    answers++
    await c.store.exports.putStatus(changed, { observedGeneration: x.spec.generation, totalBytes: String(100n * GiB), availableBytes: String(40n * GiB), updatedAt: new Date(now).toISOString() })
  })
  t.teardown(unwatch)
  const [one, two] = await Promise.all([c.call('GetCapacity', req), c.call('GetCapacity', req)])
  t.same(one, { available_capacity: String(40n * GiB), maximum_volume_size: { value: String(40n * GiB) }, minimum_volume_size: null }, 'the export\'s free space; one volume may take all of it')
  t.same(two, one, 'a concurrent call gets the same answer')
  const x = await c.store.exports.get(id)
  t.same(x?.spec, { node: 'a', server: where.server, share: where.share, mountOptions: ['nfsvers=4.2'], generation: 1 }, 'asked once, of the node that serves nfs, with the class\'s options')
  now += 20_000
  t.same(await c.call('GetCapacity', { ...req, accessible_topology: { segments: { 'topology.tscsi.dev/node': 'old' } } }), one, 'any segment: every node reaches the export')
  t.equal((await c.store.exports.get(id))?.spec.generation, 1, 'within 30 s the answer is reused')
  now += 20_000
  await c.call('GetCapacity', req)
  t.equal((await c.store.exports.get(id))?.spec.generation, 2, 'after 30 s a fresh measurement is asked for')
  t.equal(answers, 2, 'the node measured twice in all')
  // Another class on the same export with other options is another question.
  await c.call('GetCapacity', { ...req, volume_capabilities: [mountCap('MULTI_NODE_MULTI_WRITER')] })
  t.ok(await c.store.exports.get(exportIdFor(where.server, where.share, [])), 'options are part of what is measured (they decide whether the mount works)')
})

t.test('GetCapacity of an nfs class: a failure is handed on and the next call asks another node', async (t) => {
  const c = await controller(t, [['a', ['dir', 'image', 'nfs']], ['b', ['dir', 'image', 'nfs']]])
  const req = { parameters: { kind: 'nfs', server: where.server, share: where.share }, volume_capabilities: [] }
  const id = exportIdFor(where.server, where.share, [])
  const asked: string[] = []
  const unwatch = c.store.exports.watch(async (changed) => {
    const x = await c.store.exports.get(changed)
    if (!x || (x.status && x.status.observedGeneration >= x.spec.generation)) return
    asked.push(x.spec.node)
    // The first node asked cannot reach the server; the second can.
    const st = asked.length === 1
      ? { code: 'UNAVAILABLE', message: `the NFS server did not serve ${where.server}:${where.share}: ETIMEDOUT` }
      : { totalBytes: String(GiB), availableBytes: String(GiB / 2n) }
    await c.store.exports.putStatus(changed, { observedGeneration: x.spec.generation, ...st, updatedAt: new Date().toISOString() })
  })
  t.teardown(unwatch)
  await rejectsCsi(t, c.call('GetCapacity', req), status.UNAVAILABLE, /nfs\.example\.com:\/export.*ETIMEDOUT/, 'the node\'s error, naming the export')
  t.same(await c.call('GetCapacity', req), { available_capacity: String(GiB / 2n), maximum_volume_size: { value: String(GiB / 2n) }, minimum_volume_size: null })
  t.equal(asked.length, 2)
  t.not(asked[0], asked[1], 'the retry went to the other node')
  unwatch()
  // A node that never answers: the bounded wait, then another node.
  const before = (await c.store.exports.get(id))!.spec.node
  await c.store.exports.putStatus(id, { observedGeneration: 0, updatedAt: new Date(0).toISOString() })
  await rejectsCsi(t, c.call('GetCapacity', req), status.DEADLINE_EXCEEDED, /did not measure nfs\.example\.com:\/export/)
  const after = (await c.store.exports.get(id))!.spec.node
  t.not(after, before, 'an unanswered question moves to the other node')
})

t.test('GetCapacity of an nfs class refuses bad parameters by name, and needs a node that serves nfs', async (t) => {
  const c = await controller(t, [['old', ['dir', 'image']]])
  const nfs = { kind: 'nfs', server: where.server, share: where.share }
  await rejectsCsi(t, c.call('GetCapacity', { parameters: nfs }), status.FAILED_PRECONDITION, /no registered node serves nfs volumes/)
  for (const [bad, re] of [
    [{ server: 'x,vers=2' }, /parameters\[server\]/],
    [{ share: '/export\n/etc' }, /parameters\[share\]/],
    [{ share: 'relative' }, /parameters\[share\]/],
    [{ pool: 'fast' }, /parameters\[pool\].*does not apply to kind: nfs/],
  ] as const) {
    await rejectsCsi(t, c.call('GetCapacity', { parameters: { ...nfs, ...bad } }), status.INVALID_ARGUMENT, re, JSON.stringify(bad))
  }
  await rejectsCsi(t, c.call('GetCapacity', { parameters: nfs, volume_capabilities: [{ block: {}, access_type: 'block', access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }] }),
    status.INVALID_ARGUMENT, /block access is not supported/)
  t.same(await c.store.exports.list(), [], 'nothing was asked')
})
