// controller/placement.ts: which node a new volume goes to, and how much room each node has.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { CsiError } from '../common/errors.js'
import { TOPOLOGY_KEY } from '../common/keys.js'
import type { VolumeSpec } from '../common/store/model.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'
import { allocatedByNode, chooseNode, freeProjectId, matches, planClaim, roomOf, type NodeRoom, type Requirements } from '../controller/placement.js'

const G = 1024n ** 3n
const topo = (node: string) => ({ segments: { [TOPOLOGY_KEY]: node } })

function node(id: string, total: bigint | undefined, available = total, kinds: 'dir'[] = ['dir']): NodeObject {
  const o: NodeObject = { id, spec: { topology: { [TOPOLOGY_KEY]: id }, maxVolumes: 0, kinds, pools: ['default'] } }
  if (total !== undefined) o.status = { pools: { default: { totalBytes: String(total), availableBytes: String(available) } }, updatedAt: '' }
  return o
}

function vol(nodeId: string, size: bigint, over: Partial<VolumeSpec> = {}): VolumeObject {
  return {
    id: `v-${nodeId}-${size}`,
    spec: { name: 'n', node: nodeId, kind: 'dir', pool: 'default', capacityBytes: String(size), accessType: 'mount', parameters: {}, createdAt: '', generation: 1, ...over },
  }
}

function room(id: string, free: bigint, total = free): NodeRoom {
  return { id, topology: { [TOPOLOGY_KEY]: id }, total, free }
}

const none: Requirements = { requisite: [], preferred: [] }

function codeOf(fn: () => unknown): number | string {
  try {
    return (fn() as NodeRoom).id
  } catch (e) {
    if (e instanceof CsiError) return e.code
    throw e
  }
}

t.test('allocatedByNode sums capacities per node, deleting volumes included', async (t) => {
  const a = allocatedByNode([vol('a', 1n * G), vol('a', 2n * G, { deletionRequestedAt: 'now' }), vol('b', 5n)])
  t.equal(a.get('a'), 3n * G)
  t.equal(a.get('b'), 5n)
  t.equal(a.get('c'), undefined)
})

t.test('roomOf: free is the smaller of unpromised and available, never negative', async (t) => {
  const rooms = roomOf(
    [node('a', 10n * G, 10n * G), node('b', 10n * G, 2n * G), node('c', 1n * G), node('never-reported', undefined), node('other-kind', 10n * G, 10n * G, [])],
    [vol('a', 3n * G), vol('b', 1n * G), vol('c', 4n * G), vol('a', 5n * G, { pool: 'fast' })],
    'default',
    'dir',
  )
  t.same(rooms.map((r) => [r.id, r.free]), [['a', 7n * G], ['b', 2n * G], ['c', 0n]])
  t.same(rooms.map((r) => r.total), [10n * G, 10n * G, 1n * G])
  t.equal(roomOf([node('other-kind', 1n, 1n, [])], [], 'default').length, 1, 'without a kind every reporting node counts')
  t.equal(roomOf([node('a', 1n)], [], 'fast').length, 0, 'a node without the pool offers no room in it')
})

t.test('matches needs every segment of a non-empty topology', async (t) => {
  t.ok(matches({ [TOPOLOGY_KEY]: 'a', zone: 'z' }, topo('a')))
  t.notOk(matches({ [TOPOLOGY_KEY]: 'a' }, topo('b')))
  t.notOk(matches({ [TOPOLOGY_KEY]: 'a' }, { segments: { [TOPOLOGY_KEY]: 'a', zone: 'z' } }))
  t.notOk(matches({ [TOPOLOGY_KEY]: 'a' }, { segments: {} }), 'an empty topology matches nothing')
})

t.test('chooseNode: preferred order first, then most free room', async (t) => {
  const rooms = [room('a', 5n * G), room('b', 9n * G), room('c', 7n * G)]
  const cases: [string, bigint, Requirements, string | number][] = [
    ['no preference: most room', 1n * G, none, 'b'],
    ['preferred wins over room', 1n * G, { requisite: [], preferred: [topo('a')] }, 'a'],
    ['preferred in the order given', 1n * G, { requisite: [], preferred: [topo('c'), topo('a')] }, 'c'],
    ['preferred without room falls through', 6n * G, { requisite: [], preferred: [topo('a'), topo('c')] }, 'c'],
    ['then the rest by room', 8n * G, { requisite: [], preferred: [topo('a')] }, 'b'],
    ['requisite filters', 1n * G, { requisite: [topo('a'), topo('c')], preferred: [] }, 'c'],
    ['requisite and preferred', 1n * G, { requisite: [topo('a'), topo('c')], preferred: [topo('a')] }, 'a'],
    ['preferred outside requisite is ignored', 1n * G, { requisite: [topo('c')], preferred: [topo('b')] }, 'c'],
    ['exact fit', 9n * G, none, 'b'],
  ]
  for (const [what, size, req, want] of cases) t.equal(codeOf(() => chooseNode(rooms, size, req)), want, what)
})

t.test('chooseNode: ties in room are broken by id, so placement is deterministic', async (t) => {
  t.equal(chooseNode([room('b', G), room('a', G), room('c', G)], 1n, none).id, 'a')
})

t.test('chooseNode errors: RESOURCE_EXHAUSTED for no node or no room, OUT_OF_RANGE beyond any node', async (t) => {
  const rooms = [room('a', 2n * G, 10n * G), room('b', 1n * G, 4n * G)]
  const cases: [string, NodeRoom[], bigint, Requirements, number][] = [
    ['no nodes at all', [], 1n, none, status.RESOURCE_EXHAUSTED],
    ['requisite names an unknown node', rooms, 1n, { requisite: [topo('zz')], preferred: [] }, status.RESOURCE_EXHAUSTED],
    ['fits a node\'s size but not its free room', rooms, 3n * G, none, status.RESOURCE_EXHAUSTED],
    ['larger than every node', rooms, 11n * G, none, status.OUT_OF_RANGE],
    ['larger than every allowed node', rooms, 5n * G, { requisite: [topo('b')], preferred: [] }, status.OUT_OF_RANGE],
  ]
  for (const [what, rs, size, req, want] of cases) t.equal(codeOf(() => chooseNode(rs, size, req)), want, what)
  t.throws(() => chooseNode(rooms, 3n * G, none), { message: /node a has 2147483648 bytes free/ }, 'the message names the best node')
})

t.test('planClaim: decides on the ledger as read; a repeat keeps its claim and project id', async (t) => {
  const n = node('a', 10n * G)
  const now = new Date('2026-01-01T00:00:00Z')
  const req = { volumeId: 'v-new', pool: 'default', bytes: 4n * G, projectId: 'new' as const }
  const doc = { claims: { 'v-other': { pool: 'default', bytes: String(5n * G), projectId: 1_000_000, at: '' } } }
  const first = planClaim(doc, n, [], req, new Set(), now)
  t.same(first.result, { claimed: true, projectId: 1_000_001 }, 'the claimed project id is taken even though no volume shows it yet')
  t.same(Object.keys(first.next!.claims!).sort(), ['v-new', 'v-other'])
  const again = planClaim(first.next, n, [], req, new Set(), now)
  t.same(again.result, { claimed: true, projectId: 1_000_001 }, 'a repeat finds its own claim: same id, and its bytes count as its room')
  const full = planClaim(first.next, n, [], { ...req, volumeId: 'v-third', bytes: 2n * G }, new Set(), now)
  t.same(full.result, { claimed: false, doc: first.next }, '9 of 10 GiB claimed: 2 more do not fit')
  t.equal(full.next, undefined, 'and nothing is written')
  const freed = planClaim(first.next, n, [], { ...req, volumeId: 'v-third', bytes: 2n * G }, new Set(['v-other']), now)
  t.equal(freed.result.claimed, true, 'an orphan claim is dropped and its room reused')
  t.same(Object.keys(freed.next!.claims!).sort(), ['v-new', 'v-third'])
})

// A deleted volume whose folder is retained or archived keeps its project id on disk, and the
// kernel keeps counting its data against that id: handing the id out again would charge the old
// data to the new volume (found on a stock kernel in the VM suite). So an id is never reused.
t.test('planClaim: a project id is never handed out twice, even after its volume and claim are gone', async (t) => {
  const n = node('a', 10n * G)
  const now = new Date('2026-01-01T00:00:00Z')
  const req = (volumeId: string) => ({ volumeId, pool: 'default', bytes: G, projectId: 'new' as const })
  const first = planClaim(undefined, n, [], req('v-kept'), new Set(), now)
  t.same(first.result, { claimed: true, projectId: 1_000_000 })
  // v-kept is deleted with onDelete: retain: no volume object, and its claim is an orphan.
  const next = planClaim(first.next, n, [], req('v-new'), new Set(['v-kept']), now)
  t.same(Object.keys(next.next!.claims!), ['v-new'], 'the orphan claim is gone')
  t.same(next.result, { claimed: true, projectId: 1_000_001 }, 'the retained folder\'s id is not reused')
  t.equal(freeProjectId([], 'a', 'fast', next.next), 1_000_000, 'each pool (filesystem) counts on its own')
  const old = planClaim({ claims: {} }, n, [vol('a', G, { projectId: 1_000_007 })], req('v-upgrade'), new Set(), now)
  t.same(old.result, { claimed: true, projectId: 1_000_008 }, 'a ledger without a high mark starts above every id in use')
})

t.test('roomOf: a claim counts like a volume, once per volume id (the larger of the two)', async (t) => {
  const v = vol('a', 1n * G)
  const claims = new Map([['a', { claims: { [v.id]: { pool: 'default', bytes: String(3n * G), at: '' }, 'v-x': { pool: 'fast', bytes: String(G), at: '' } } }]])
  t.same(roomOf([node('a', 10n * G)], [v], 'default', 'dir', claims).map((r) => r.free), [7n * G], 'an expansion being claimed: 3 GiB held, not 1 and not 4')
  t.same(roomOf([node('a', 10n * G)], [v], 'default', 'dir', claims, v.id).map((r) => r.free), [10n * G], 'the volume itself sees what it holds as room')
})
