// Service tests of the controller RPCs against a real LocalStore in a testdir. The node side is
// the real Realiser (with FakeMounter for statfs), running on its own LocalStore instance on the
// same folder, so CreateVolume/DeleteVolume really wait for the node to act.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { silentLogger } from '../common/log.js'
import { LocalStore } from '../common/store/local.js'
import { TOPOLOGY_KEY } from '../common/keys.js'
import { waitFor } from '../common/store/wait.js'
import { controllerDeps } from '../controller/deps.js'
import { publishHandlers } from '../controller/publish.js'
import { volumeIdFor } from '../common/ids.js'
import { GiB } from '../common/sizes.js'
import { volumeHandlers } from '../controller/volumes.js'
import { nodeDeps } from '../node/deps.js'
import { Layout } from '../node/layout.js'
import { Realiser } from '../node/realiser.js'
import { stageHandlers } from '../node/stage.js'
import { FakeMounter } from './helpers/fake-mounter.js'
import { handler, mountCap, rejectsCsi, type TT } from './helpers/csi.js'

const MiB = 1024n * 1024n
const NEVER = 3_600_000

async function cluster(t: TT, o: { realiser?: boolean; realiseTimeoutMs?: number } = {}) {
  const dir = t.testdir({ state: {}, data: { volumes: {} }, staging: {} })
  const log = silentLogger()
  const ctrlStore = await LocalStore.open(path.join(dir, 'state'), log, NEVER)
  const nodeStore = await LocalStore.open(path.join(dir, 'state'), log, NEVER)
  t.teardown(async () => {
    await ctrlStore.close()
    await nodeStore.close()
  })
  const mounter = new FakeMounter()
  const layout = new Layout(path.join(dir, 'data'))
  const nd = nodeDeps({ nodeId: 'node-a', maxVolumes: 0, layout, mounter, log })
  if (o.realiser === false) {
    // Registered and reporting capacity once, but its plugin is not running.
    await nodeStore.nodes.putSpec('node-a', { topology: { [TOPOLOGY_KEY]: 'node-a' }, maxVolumes: 0, kinds: ['dir'], pools: ['default'] })
    await nodeStore.nodes.putStatus('node-a', { pools: { default: { totalBytes: String(10n * GiB), availableBytes: String(10n * GiB) } }, updatedAt: new Date().toISOString() })
  } else {
    const realiser = new Realiser({ store: nodeStore, deps: nd, log, capacityIntervalMs: NEVER })
    await realiser.start()
    t.teardown(() => realiser.stop())
  }
  const known = await waitFor(ctrlStore.nodes, 'node-a', (n) => (n?.status ? true : undefined), 3000)
  if (!known) throw new Error('the controller never saw node-a register')
  const d = controllerDeps({ store: ctrlStore, log, realiseTimeoutMs: o.realiseTimeoutMs ?? 5000, enableAttach: true })
  const h = { ...volumeHandlers(d), ...publishHandlers(d) }
  const node = stageHandlers(nd)
  return {
    dir, ctrlStore, nodeStore, layout, mounter, d,
    call: (name: string, req: Record<string, unknown>): Promise<any> => handler(h, name)(req),
    nodeCall: (name: string, req: Record<string, unknown>): Promise<any> => handler(node, name)(req),
  }
}

function createReq(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name, capacity_range: { required_bytes: String(MiB), limit_bytes: '0' }, volume_capabilities: [mountCap()],
    parameters: {}, secrets: {}, volume_content_source: null, accessibility_requirements: null, mutable_parameters: {}, ...over,
  }
}

function publishReq(volumeId: string, nodeId = 'node-a', readonly = false): Record<string, unknown> {
  return { volume_id: volumeId, node_id: nodeId, volume_capability: mountCap(), readonly, secrets: {}, volume_context: {} }
}

t.test('CreateVolume is idempotent by name: same id, one object, one directory', async (t) => {
  const c = await cluster(t)
  const first = await c.call('CreateVolume', createReq('pvc-1'))
  const again = await c.call('CreateVolume', createReq('pvc-1'))
  t.equal(first.volume.volume_id, volumeIdFor('pvc-1'), 'id derived from the name')
  t.same(again, first, 'the repeat answers the same volume')
  t.equal(first.volume.capacity_bytes, String(MiB))
  t.same(first.volume.accessible_topology, [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }])
  t.same((await c.ctrlStore.volumes.list()).map((v) => v.id), [first.volume.volume_id], 'one object in the store')
  t.ok(existsSync(c.layout.volumeDir(first.volume.volume_id)), 'the node created its directory')
})

t.test('an incompatible repeat of CreateVolume is ALREADY_EXISTS', async (t) => {
  const c = await cluster(t)
  await c.call('CreateVolume', createReq('pvc-1'))
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { capacity_range: { required_bytes: String(2n * MiB), limit_bytes: '0' } })),
    status.ALREADY_EXISTS, /range/, 'bigger size')
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { parameters: { kind: 'dir' } })), status.ALREADY_EXISTS, /parameters/, 'different parameters')
  t.equal((await c.ctrlStore.volumes.list()).length, 1)
})

t.test('a repeat whose parameters arrive in another key order is the same volume', async (t) => {
  const c = await cluster(t)
  const a = { kind: 'dir', 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default' }
  const b = { 'csi.storage.k8s.io/pvc/namespace': 'default', 'csi.storage.k8s.io/pvc/name': 'data', kind: 'dir' }
  const first = await c.call('CreateVolume', createReq('pvc-1', { parameters: a }))
  const again = await c.call('CreateVolume', createReq('pvc-1', { parameters: b })).catch((e: Error) => e)
  t.same(again, first, 'a map is unordered on the wire; Go senders do not keep key order')
})

t.test('an unknown parameter is INVALID_ARGUMENT naming it, and nothing is stored', async (t) => {
  const c = await cluster(t)
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { parameters: { knd: 'dir' } })), status.INVALID_ARGUMENT, /knd/)
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { parameters: { kind: 'tape' } })), status.INVALID_ARGUMENT, /tape/)
  t.same(await c.ctrlStore.volumes.list(), [])
})

t.test('placement errors: unknown requisite node is RESOURCE_EXHAUSTED, too big is OUT_OF_RANGE', async (t) => {
  const c = await cluster(t)
  const elsewhere = { requisite: [{ segments: { [TOPOLOGY_KEY]: 'node-zz' } }], preferred: [] }
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1', { accessibility_requirements: elsewhere })), status.RESOURCE_EXHAUSTED, /requisite/)
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-2', { capacity_range: { required_bytes: String(100n * GiB), limit_bytes: '0' } })),
    status.OUT_OF_RANGE)
  t.same(await c.ctrlStore.volumes.list(), [])
  const here = { requisite: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }], preferred: [] }
  const ok = await c.call('CreateVolume', createReq('pvc-3', { accessibility_requirements: here }))
  t.ok(ok.volume.volume_id, 'the requisite naming the node works')
})

t.test('DeleteVolume: unknown ids are OK, a real one loses its directory and store object', async (t) => {
  const c = await cluster(t)
  t.same(await c.call('DeleteVolume', { volume_id: volumeIdFor('never-made'), secrets: {} }), {})
  t.same(await c.call('DeleteVolume', { volume_id: 'not-ours', secrets: {} }), {})
  const { volume } = await c.call('CreateVolume', createReq('pvc-1'))
  t.ok(existsSync(c.layout.volumeDir(volume.volume_id)))
  t.same(await c.call('DeleteVolume', { volume_id: volume.volume_id, secrets: {} }), {})
  t.notOk(existsSync(c.layout.volumeDir(volume.volume_id)), 'directory removed by the node')
  t.equal(await c.ctrlStore.volumes.refresh(volume.volume_id), undefined, 'store object removed')
  t.same(await c.call('DeleteVolume', { volume_id: volume.volume_id, secrets: {} }), {}, 'repeat is OK')
})

t.test('DeleteVolume of a volume with a ControllerPublish record is FAILED_PRECONDITION', async (t) => {
  const c = await cluster(t)
  const { volume } = await c.call('CreateVolume', createReq('pvc-1'))
  await c.call('ControllerPublishVolume', publishReq(volume.volume_id))
  await rejectsCsi(t, c.call('DeleteVolume', { volume_id: volume.volume_id }), status.FAILED_PRECONDITION, /node-a/)
  t.ok(existsSync(c.layout.volumeDir(volume.volume_id)), 'data kept')
  await c.call('ControllerUnpublishVolume', { volume_id: volume.volume_id, node_id: 'node-a' })
  t.same(await c.call('DeleteVolume', { volume_id: volume.volume_id }), {}, 'deletable once unpublished')
})

t.test('DeleteVolume of a volume staged on its node is FAILED_PRECONDITION until unstaged', async (t) => {
  const c = await cluster(t)
  const { volume } = await c.call('CreateVolume', createReq('pvc-1'))
  const staging = path.join(c.dir, 'staging')
  const stage = { volume_id: volume.volume_id, staging_target_path: staging, volume_capability: mountCap(), volume_context: volume.volume_context }
  await c.nodeCall('NodeStageVolume', stage)
  await rejectsCsi(t, c.call('DeleteVolume', { volume_id: volume.volume_id }), status.FAILED_PRECONDITION, /mounted/)
  t.ok(existsSync(c.layout.volumeDir(volume.volume_id)), 'data kept')
  await c.nodeCall('NodeUnstageVolume', { volume_id: volume.volume_id, staging_target_path: staging })
  t.same(await c.call('DeleteVolume', { volume_id: volume.volume_id }), {}, 'a retry after unstage succeeds')
  t.notOk(existsSync(c.layout.volumeDir(volume.volume_id)))
})

t.test('ListVolumes pages through every volume exactly once; a bad token is ABORTED', async (t) => {
  const c = await cluster(t)
  const made: string[] = []
  for (let i = 0; i < 7; i++) made.push((await c.call('CreateVolume', createReq(`pvc-${i}`))).volume.volume_id)
  const seen: string[] = []
  let token = ''
  const pages: number[] = []
  for (let i = 0; i < 10; i++) {
    const res = await c.call('ListVolumes', { max_entries: 3, starting_token: token })
    pages.push(res.entries.length)
    for (const e of res.entries) {
      seen.push(e.volume.volume_id)
      t.equal(e.status.volume_condition.abnormal, false, 'realised volumes are healthy')
    }
    token = res.next_token
    if (token === '') break
  }
  t.same(pages, [3, 3, 1])
  t.same([...seen].sort(), [...made].sort(), 'every id seen')
  t.equal(new Set(seen).size, 7, 'none twice')
  const all = await c.call('ListVolumes', { max_entries: 0, starting_token: '' })
  t.equal(all.entries.length, 7, 'max_entries 0 means all')
  t.equal(all.next_token, '')
  await rejectsCsi(t, c.call('ListVolumes', { max_entries: 3, starting_token: 'bogus' }), status.ABORTED)
  await rejectsCsi(t, c.call('ListVolumes', { max_entries: -1, starting_token: '' }), status.INVALID_ARGUMENT, /max_entries/)
})

t.test('GetCapacity drops by the size of a created volume', async (t) => {
  const c = await cluster(t)
  const req = { volume_capabilities: [mountCap()], parameters: {}, accessible_topology: null }
  const before = await c.call('GetCapacity', req)
  t.equal(before.available_capacity, String(10n * GiB), 'the node reported its filesystem')
  await c.call('CreateVolume', createReq('pvc-1', { capacity_range: { required_bytes: String(GiB), limit_bytes: '0' } }))
  const after = await c.call('GetCapacity', req)
  t.equal(BigInt(before.available_capacity) - BigInt(after.available_capacity), GiB)
  const other = await c.call('GetCapacity', { ...req, accessible_topology: { segments: { [TOPOLOGY_KEY]: 'node-zz' } } })
  t.equal(other.available_capacity, '0', 'a segment without nodes has no capacity')
})

t.test('ControllerPublishVolume: other node FAILED_PRECONDITION, unknown node NOT_FOUND, changed repeat ALREADY_EXISTS', async (t) => {
  const c = await cluster(t)
  await c.ctrlStore.nodes.putSpec('node-b', { topology: { [TOPOLOGY_KEY]: 'node-b' }, maxVolumes: 0, kinds: ['dir'], pools: ['default'] })
  const { volume } = await c.call('CreateVolume', createReq('pvc-1'))
  const id = volume.volume_id
  await rejectsCsi(t, c.call('ControllerPublishVolume', publishReq(id, 'node-b')), status.FAILED_PRECONDITION, /node-a/)
  await rejectsCsi(t, c.call('ControllerPublishVolume', publishReq(id, 'node-zz')), status.NOT_FOUND, /node-zz/)
  await rejectsCsi(t, c.call('ControllerPublishVolume', publishReq(volumeIdFor('nope'))), status.NOT_FOUND)
  t.same(await c.call('ControllerPublishVolume', publishReq(id)), { publish_context: {} })
  t.same(await c.call('ControllerPublishVolume', publishReq(id)), { publish_context: {} }, 'identical repeat is OK')
  await rejectsCsi(t, c.call('ControllerPublishVolume', publishReq(id, 'node-a', true)), status.ALREADY_EXISTS, /readonly/)
  const listed = await c.call('ControllerGetVolume', { volume_id: id })
  t.same(listed.status.published_node_ids, ['node-a'])
})

t.test('a realisation the node failed is reported, and a retry asks the node again', async (t) => {
  const c = await cluster(t)
  const id = volumeIdFor('pvc-1')
  writeFileSync(c.layout.volumeDir(id), 'in the way')
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1')), status.FAILED_PRECONDITION, /not a directory/)
  rmSync(c.layout.volumeDir(id))
  const ok = await c.call('CreateVolume', createReq('pvc-1'))
  t.equal(ok.volume.volume_id, id)
  t.ok(existsSync(c.layout.volumeDir(id)))
})

t.test('without a running node plugin CreateVolume answers DEADLINE_EXCEEDED after realiseTimeoutMs', async (t) => {
  const c = await cluster(t, { realiser: false, realiseTimeoutMs: 300 })
  const started = Date.now()
  await rejectsCsi(t, c.call('CreateVolume', createReq('pvc-1')), status.DEADLINE_EXCEEDED, /node-a/)
  const took = Date.now() - started
  t.ok(took >= 280 && took < 3000, `took ${took} ms`)
  t.equal((await c.ctrlStore.volumes.list()).length, 1, 'the desired volume stays recorded for a retry')
})
