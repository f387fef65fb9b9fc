// Two controllers on one store, as two replicas during a failover: each with its own store
// instance, caches, locks and placement queue, sharing only the folder. The node side is the real
// Realiser with a FakeMounter that reports a 10 MiB pool. Also the ledger's retry on a conflict,
// with the API server replaced.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import path from 'node:path'
import { KubeConfig, type CustomObjectsApi } from '@kubernetes/client-node'
import { CsiError } from '../common/errors.js'
import { silentLogger } from '../common/log.js'
import { KubeLedger } from '../common/store/kube-ledger.js'
import { LocalStore } from '../common/store/local.js'
import type { LedgerDoc } from '../common/store/model.js'
import { waitFor } from '../common/store/wait.js'
import { controllerDeps } from '../controller/deps.js'
import { expandHandlers } from '../controller/expand.js'
import { CLAIM_GRACE_MS } from '../controller/claims.js'
import { LostNodeWatch } from '../controller/lostnodes.js'
import { claimsId } from '../controller/placement.js'
import { volumeIdFor } from '../common/ids.js'
import { volumeHandlers } from '../controller/volumes.js'
import { nodeDeps } from '../node/deps.js'
import { Layout } from '../node/layout.js'
import { Realiser } from '../node/realiser.js'
import { FakeMounter } from './helpers/fake-mounter.js'
import { handler, mountCap, type TT } from './helpers/csi.js'
import { Registry } from 'prom-client'

const MiB = 1024n * 1024n
const NEVER = 3_600_000

async function pair(t: TT, poolMiB = 10n) {
  const dir = t.testdir({ state: {}, data: { volumes: {} } })
  const log = silentLogger()
  const open = async () => {
    const s = await LocalStore.open(path.join(dir, 'state'), log, NEVER)
    t.teardown(() => s.close())
    return s
  }
  const nodeStore = await open()
  const nd = nodeDeps({ nodeId: 'node-a', maxVolumes: 0, layout: new Layout(path.join(dir, 'data')), mounter: new FakeMounter({ blocks: (poolMiB * MiB) / 4096n }), log })
  const realiser = new Realiser({ store: nodeStore, deps: nd, log, capacityIntervalMs: NEVER })
  await realiser.start()
  t.teardown(() => realiser.stop())
  const controllers = []
  for (let i = 0; i < 2; i++) {
    const store = await open()
    if (!(await waitFor(store.nodes, 'node-a', (n) => (n?.status ? true : undefined), 3000))) throw new Error('node-a never registered')
    const d = controllerDeps({ store, log, realiseTimeoutMs: 10_000, enableAttach: false })
    const h = { ...volumeHandlers(d), ...expandHandlers(d) }
    controllers.push({ store, d, call: (name: string, req: Record<string, unknown>): Promise<any> => handler(h, name)(req) })
  }
  return { dir, nodeStore, controllers }
}

const createReq = (name: string, bytes = MiB) => ({
  name, capacity_range: { required_bytes: String(bytes), limit_bytes: '0' }, volume_capabilities: [mountCap()],
  parameters: {}, secrets: {}, volume_content_source: null, accessibility_requirements: null, mutable_parameters: {},
})

async function outcomes(calls: Promise<any>[]): Promise<{ ok: any[]; codes: number[] }> {
  const settled = await Promise.allSettled(calls)
  const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  const codes = settled.flatMap((s) => (s.status === 'rejected' ? [(s.reason as CsiError).code] : []))
  return { ok, codes }
}

t.test('two controllers, 24 concurrent 1 MiB creates for a 10 MiB pool: exactly 10 fit, distinct project ids', async (t) => {
  const { controllers } = await pair(t)
  const { ok, codes } = await outcomes(Array.from({ length: 24 }, (_, i) => controllers[i % 2]!.call('CreateVolume', createReq(`pvc-${i}`))))
  t.equal(ok.length, 10, 'the pool holds ten, and ten were accepted')
  t.same(new Set(codes), new Set([status.RESOURCE_EXHAUSTED]), 'every other call is RESOURCE_EXHAUSTED')
  const specs = (await controllers[0]!.store.volumes.list()).map((v) => v.spec)
  t.equal(specs.reduce((s, v) => s + BigInt(v.capacityBytes), 0n), 10n * MiB, 'what the store holds adds up to the pool, not more')
  const ids = specs.map((s) => s.projectId)
  t.equal(new Set(ids).size, ids.length, `project ids are distinct (${ids.join(', ')})`)
  const claims = (await controllers[1]!.store.ledger.get(claimsId('node-a')))?.claims ?? {}
  t.same(Object.keys(claims).sort(), ok.map((r) => r.volume.volume_id).sort(), 'the ledger holds a claim for each accepted volume and nothing else')
})

t.test('the same name sent to both controllers at once is one volume', async (t) => {
  const { controllers } = await pair(t)
  const { ok, codes } = await outcomes([0, 1, 0, 1].map((i) => controllers[i]!.call('CreateVolume', createReq('pvc-twice'))))
  t.same(codes.filter((c) => c !== status.ABORTED), [], 'only ABORTED (same volume busy in that process) is allowed besides OK')
  t.ok(ok.length >= 2, 'both controllers answered OK at least once')
  t.same(new Set(ok.map((r) => r.volume.volume_id)), new Set([volumeIdFor('pvc-twice')]))
  t.equal((await controllers[0]!.store.volumes.list()).length, 1, 'one volume object')
})

t.test('a deleted volume gives its room back to both controllers', async (t) => {
  const { controllers } = await pair(t, 2n)
  const a = await controllers[0]!.call('CreateVolume', createReq('pvc-a', 2n * MiB))
  await t.rejects(controllers[1]!.call('CreateVolume', createReq('pvc-b', MiB)), { code: status.RESOURCE_EXHAUSTED }, 'full, seen from the other controller')
  await controllers[0]!.call('DeleteVolume', { volume_id: a.volume.volume_id, secrets: {} })
  t.same((await controllers[1]!.store.ledger.get(claimsId('node-a')))?.claims, {}, 'the claim went with the volume')
  const b = await controllers[1]!.call('CreateVolume', createReq('pvc-b', 2n * MiB))
  t.equal(b.volume.capacity_bytes, String(2n * MiB))
})

t.test('a claim whose volume never appeared holds its room until it is older than any create takes', async (t) => {
  const { controllers } = await pair(t, 4n)
  const ledger = controllers[0]!.store.ledger
  // A controller claimed 4 MiB and died before writing the volume.
  const orphan = (at: Date) => ledger.update(claimsId('node-a'), () => ({ next: { claims: { [volumeIdFor('pvc-died')]: { pool: 'default', bytes: String(4n * MiB), projectId: 1_000_000, at: at.toISOString() } } }, result: 0 }))
  await orphan(new Date())
  await t.rejects(controllers[1]!.call('CreateVolume', createReq('pvc-new')), { code: status.RESOURCE_EXHAUSTED }, 'a young claim may still become a volume: its room stays taken')
  await orphan(new Date(Date.now() - CLAIM_GRACE_MS - 60_000))
  const v = await controllers[1]!.call('CreateVolume', createReq('pvc-new'))
  t.equal(v.volume.capacity_bytes, String(MiB), 'an old one with no volume is dropped and its room reused')
  t.same(Object.keys((await ledger.get(claimsId('node-a')))?.claims ?? {}), [v.volume.volume_id], 'the orphan is gone from the ledger')
})

t.test('concurrent expansions through both controllers never promise more than the pool', async (t) => {
  const { controllers } = await pair(t, 8n)
  const vols = await Promise.all([0, 1, 2, 3].map((i) => controllers[i % 2]!.call('CreateVolume', createReq(`pvc-${i}`))))
  // 4 MiB promised, 4 free: each wants 2 MiB more, so two of four can grow.
  const { ok, codes } = await outcomes(vols.map((v, i) => controllers[(i + 1) % 2]!.call('ControllerExpandVolume', {
    volume_id: v.volume.volume_id, capacity_range: { required_bytes: String(3n * MiB), limit_bytes: '0' }, secrets: {}, volume_capability: mountCap(),
  })))
  t.equal(ok.length, 2)
  t.same(codes, [status.RESOURCE_EXHAUSTED, status.RESOURCE_EXHAUSTED])
})

t.test('lost-node reporting: two replicas checking at once report each lost volume once; one exports the gauge', async (t) => {
  const { controllers, nodeStore } = await pair(t)
  const v = await controllers[0]!.call('CreateVolume', createReq('pvc-lost'))
  await nodeStore.nodes.remove('node-a')
  for (const c of controllers) await waitFor(c.store.nodes, 'node-a', (n) => (n ? undefined : true), 3000)
  const registries = [new Registry(), new Registry()]
  const watches = controllers.map((c, i) => new LostNodeWatch(c.store, silentLogger(), { id: `replica-${i}`, intervalMs: 60_000, registry: registries[i]! }))
  const reported: string[] = []
  for (let round = 0; round < 3; round++) for (const ids of await Promise.all(watches.map((w) => w.check()))) reported.push(...ids)
  t.same(reported, [v.volume.volume_id], 'three rounds on two replicas: reported once')
  const gauges = await Promise.all(registries.map(async (r) => (await r.getSingleMetric('tscsi_controller_lost_node_volumes')!.get()).values[0]!.value))
  t.same(gauges.sort(), [0, 1], 'the reporter says 1, the other 0: a sum over replicas is right')
})

t.test('KubeLedger: a 409 on replace re-reads and decides again on the newer object', async (t) => {
  // The API server replaced: the first replace loses a race (another controller wrote rv 2).
  let stored = { apiVersion: 'tscsi.dev/v1alpha1', kind: 'TscsiLedger', metadata: { name: 'node.n', resourceVersion: '1' }, spec: { claims: {} } as LedgerDoc }
  const seen: string[] = []
  let replaces = 0
  const api = {
    async getClusterCustomObject() { return structuredClone(stored) },
    async replaceClusterCustomObject({ body }: { body: typeof stored }) {
      replaces++
      if (replaces === 1) {
        stored = { ...stored, metadata: { ...stored.metadata, resourceVersion: '2' }, spec: { claims: { 'v-other': { pool: 'default', bytes: '5', at: '' } } } }
      }
      if (body.metadata.resourceVersion !== stored.metadata.resourceVersion) throw Object.assign(new Error('Conflict'), { code: 409 })
      stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(Number(body.metadata.resourceVersion) + 1) } }
      return stored
    },
  } as unknown as CustomObjectsApi
  const ledger = new KubeLedger<LedgerDoc>(api, new KubeConfig(), silentLogger())
  const result = await ledger.update('node.n', (doc) => {
    seen.push(Object.keys(doc?.claims ?? {}).join(','))
    return { next: { claims: { ...doc?.claims, 'v-mine': { pool: 'default', bytes: '1', at: '' } } }, result: Object.keys(doc?.claims ?? {}).length }
  })
  t.same(seen, ['', 'v-other'], 'change() ran twice: on what it read, then on the object that won')
  t.equal(result, 1, 'the answer is the one from the write that stuck')
  t.same(Object.keys(stored.spec.claims!).sort(), ['v-mine', 'v-other'], 'nothing the other controller wrote was lost')

  const failing = { async getClusterCustomObject() { throw Object.assign(new Error('Forbidden'), { code: 403 }) } } as unknown as CustomObjectsApi
  const err = await new KubeLedger<LedgerDoc>(failing, new KubeConfig(), silentLogger()).update('node.n', () => ({ result: 0 })).catch((e) => e)
  t.ok(err instanceof CsiError && err.code === status.UNAVAILABLE, 'other API errors are UNAVAILABLE CsiErrors, never raw')
})
