// controller/holdings.ts: the per-node and per-pool index placement reads instead of every
// volume. It must agree with a fresh walk of the volumes after any sequence of changes: resizes,
// deletes, creates that lost the race, another process's writes, and a restart.
import t from 'tap'
import { silentLogger } from '../common/log.js'
import { LocalStore } from '../common/store/local.js'
import type { LedgerDoc, VolumeSpec } from '../common/store/model.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'
import { holdingsFor, holdingsOf, Holdings, type SpecHoldings } from '../controller/holdings.js'
import { freeProjectId, roomOf } from '../controller/placement.js'
import type { TT } from './helpers/csi.js'

const G = 1024n ** 3n
const NEVER = 3_600_000

function spec(node: string, bytes: bigint, over: Partial<VolumeSpec> = {}): VolumeSpec {
  return { name: 'n', node, kind: 'dir', pool: 'default', capacityBytes: String(bytes), accessType: 'mount', parameters: {}, createdAt: '', generation: 1, ...over }
}

const vol = (id: string, node: string, bytes: bigint, over: Partial<VolumeSpec> = {}): VolumeObject => ({ id, spec: spec(node, bytes, over) })

function node(id: string, total: bigint, pools = ['default', 'fast']): NodeObject {
  return {
    id, spec: { topology: {}, maxVolumes: 0, kinds: ['dir'], pools },
    status: { pools: Object.fromEntries(pools.map((p) => [p, { totalBytes: String(total), availableBytes: String(total) }])), updatedAt: '' },
  }
}

/** What placement sees through an index, for comparison with what it sees through a list. */
function seen(h: SpecHoldings | VolumeObject[], claims = new Map<string, LedgerDoc>()): unknown {
  const nodes = [node('a', 100n * G), node('b', 100n * G)]
  return ['default', 'fast'].map((pool) => ({
    rooms: roomOf(nodes, h, pool, 'dir', claims, 'v1').map((r) => [r.id, r.free]),
    ids: ['a', 'b'].map((n) => freeProjectId(h, n, pool)),
  }))
}

t.test('Holdings: sums and ids per node and pool follow sets, resizes, moves and deletes', async (t) => {
  const h = new Holdings()
  h.set('v1', vol('v1', 'a', 1n * G, { projectId: 1_000_004 }))
  h.set('v2', vol('v2', 'a', 2n * G, { projectId: 1_000_002 }))
  h.set('v3', vol('v3', 'a', 4n * G, { pool: 'fast', projectId: 1_000_009 }))
  t.equal(h.total('a', 'default'), 3n * G)
  t.equal(h.total('a', 'fast'), 4n * G)
  t.equal(h.total('b', 'default'), 0n, 'an unknown node holds nothing')
  t.equal(h.topProjectId('a', 'default'), 1_000_004)
  h.set('v2', vol('v2', 'a', 5n * G, { projectId: 1_000_002 }))
  t.equal(h.total('a', 'default'), 6n * G, 'a resize replaces the old size, it does not add to it')
  t.equal(h.bytesOf('a', 'default', 'v2'), 5n * G)
  h.set('v1', undefined)
  t.equal(h.total('a', 'default'), 5n * G, 'a delete gives its bytes back')
  t.notOk(h.has('a', 'v1'))
  t.equal(h.topProjectId('a', 'default'), 1_000_004, 'but not its project id: ids are never reused')
  h.set('v1', undefined)
  t.equal(h.size, 2, 'deleting twice is a no-op')
  t.same(seen(h), seen([vol('v2', 'a', 5n * G, { projectId: 1_000_004 }), vol('v3', 'a', 4n * G, { pool: 'fast', projectId: 1_000_009 })]))
})

t.test('roomOf and freeProjectId answer the same through an index as through the list', async (t) => {
  const vols = [
    vol('v1', 'a', 3n * G, { projectId: 1_000_001 }), vol('v2', 'a', 1n * G, { deletionRequestedAt: 'now' }), vol('v3', 'b', 7n * G, { pool: 'fast', projectId: 1_000_003 }),
    vol('v4', 'b', 2n * G, { projectId: 1_000_000 }),
  ]
  const claims = new Map<string, LedgerDoc>([
    // v1's expansion being claimed (larger than its spec), v4's claim smaller than its spec, a
    // claim of a volume not seen yet, one in another pool, and one for a volume on another node.
    ['a', { claims: { v1: { pool: 'default', bytes: String(5n * G), at: '' }, vx: { pool: 'default', bytes: String(G), projectId: 1_000_006, at: '' }, vy: { pool: 'fast', bytes: String(G), at: '' } } }],
    ['b', { claims: { v4: { pool: 'default', bytes: String(G), at: '' }, v1: { pool: 'default', bytes: String(2n * G), at: '' } } }],
  ])
  t.same(seen(holdingsOf(vols), claims), seen(vols, claims))
  t.same(seen(holdingsOf(vols)), seen(vols))
  t.same(seen(holdingsOf([])), seen([]))
})

/** Polls until cond holds (another process's change arrives through inotify). */
async function until(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function open(t: TT, root: string): Promise<LocalStore> {
  const s = await LocalStore.open(root, silentLogger(), NEVER)
  t.teardown(() => s.close())
  return s
}

t.test('the live index of a store follows writes, failed creates, removes, another process and a restart', async (t) => {
  const root = t.testdir()
  const ctl = await open(t, root)
  await ctl.volumes.putSpec('v1', spec('a', 1n * G, { projectId: 1_000_000 }))
  const live = await holdingsFor(ctl.volumes)
  t.equal(live.total('a', 'default'), 1n * G, 'built from what the store holds')
  t.equal(await holdingsFor(ctl.volumes), live, 'one index per collection')

  t.equal(await ctl.volumes.create('v2', spec('a', 2n * G, { projectId: 1_000_001 })), true)
  t.equal(await ctl.volumes.create('v2', spec('a', 9n * G)), false, 'a create that finds the volume there already')
  t.equal((await holdingsFor(ctl.volumes)).total('a', 'default'), 3n * G, 'counts the volume once, at the size it has')

  await ctl.volumes.putSpec('v1', spec('a', 4n * G, { projectId: 1_000_000, deletionRequestedAt: 'now' }))
  t.equal((await holdingsFor(ctl.volumes)).total('a', 'default'), 6n * G, 'a volume being deleted still holds its room')
  await ctl.volumes.remove('v1')
  const after = await holdingsFor(ctl.volumes)
  t.equal(after.total('a', 'default'), 2n * G, 'a removed volume holds nothing')
  t.notOk(after.has('a', 'v1'))
  t.equal(freeProjectId(after, 'a', 'default'), 1_000_002, 'and its project id is not handed out again')

  // Another process (the node plugin, or a second controller) writes the same folder.
  const other = await open(t, root)
  await other.volumes.putSpec('v3', spec('b', 5n * G, { pool: 'fast' }))
  await until(async () => (await holdingsFor(ctl.volumes)).total('b', 'fast') === 5n * G, 5000)
  await other.volumes.remove('v2')
  await until(async () => !(await holdingsFor(ctl.volumes)).has('a', 'v2'), 5000)
  t.equal((await holdingsFor(ctl.volumes)).total('a', 'default'), 0n, 'another process\'s remove is seen')

  // A restart: a fresh store on the folder builds its index from what is there.
  const restarted = await open(t, root)
  const fresh = await holdingsFor(restarted.volumes)
  t.same(seen(fresh), seen(await restarted.volumes.list()), 'the restarted index agrees with the volumes on disk')
  t.equal(fresh.total('b', 'fast'), 5n * G)
})

t.test('a re-read that fails makes the index refuse, and the next call builds a fresh one', async (t) => {
  const ctl = await open(t, t.testdir())
  await ctl.volumes.putSpec('v1', spec('a', G))
  const first = await holdingsFor(ctl.volumes)
  const get = ctl.volumes.get.bind(ctl.volumes)
  ctl.volumes.get = () => Promise.reject(new Error('store down'))
  await ctl.volumes.putSpec('v2', spec('a', G))
  await t.rejects(holdingsFor(ctl.volumes), /store down/, 'no answer from an index that missed a change')
  ctl.volumes.get = get
  const again = await holdingsFor(ctl.volumes)
  t.not(again, first, 'a new index')
  t.equal(again.total('a', 'default'), 2n * G, 'built from the store as it is now')
})
