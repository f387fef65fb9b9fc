// LocalStore semantics over a real folder. Two instances opened on one folder stand in for the
// controller and node processes sharing the local store.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { CsiError } from '../common/errors.js'
import { silentLogger } from '../common/log.js'
import type { VolumeSpec, VolumeStatus } from '../common/store/model.js'
import { LocalStore } from '../common/store/local.js'
import { waitFor } from '../common/store/wait.js'
import { volumeIdFor } from '../common/ids.js'
import { rejectsCsi, type TT } from './helpers/csi.js'

function spec(name: string, over: Partial<VolumeSpec> = {}): VolumeSpec {
  return {
    name, node: 'node-a', kind: 'dir', pool: 'default', capacityBytes: '1048576', accessType: 'mount', parameters: {},
    createdAt: '2024-01-01T00:00:00.000Z', generation: 1, ...over,
  }
}

function ready(generation = 1): VolumeStatus {
  return { phase: 'Ready', observedGeneration: generation, updatedAt: '2024-01-01T00:00:01.000Z' }
}

async function open(t: TT, root: string, rescanMs?: number): Promise<LocalStore> {
  const s = await LocalStore.open(root, silentLogger(), rescanMs)
  t.teardown(() => s.close())
  return s
}

t.test('put, get, list sorted, remove idempotent', async (t) => {
  const s = await open(t, t.testdir())
  const ids = ['c', 'a', 'b'].map((n) => volumeIdFor(n))
  for (const [i, id] of ids.entries()) await s.volumes.putSpec(id, spec(`n${i}`))
  t.same((await s.volumes.get(ids[0]!))?.spec, spec('n0'))
  t.equal((await s.volumes.get(ids[0]!))?.status, undefined, 'no status yet')
  t.same((await s.volumes.list()).map((o) => o.id), [...ids].sort(), 'list is sorted by id')
  await s.volumes.putStatus(ids[1]!, ready())
  t.same((await s.volumes.get(ids[1]!))?.status, ready())
  await s.volumes.remove(ids[1]!)
  t.equal(await s.volumes.get(ids[1]!), undefined, 'removed')
  t.notOk(existsSync(path.join(s.root, 'volumes', `${ids[1]}.status.json`)), 'status file removed with the object')
  await s.volumes.remove(ids[1]!)
  await s.volumes.remove(volumeIdFor('never'))
  t.same((await s.volumes.list()).map((o) => o.id), [ids[0], ids[2]].sort(), 'remove of missing objects is OK and changes nothing')
})

t.test('putSpec replaces the whole spec and a new object appears in list()', async (t) => {
  const s = await open(t, t.testdir())
  const id = volumeIdFor('x')
  t.same(await s.volumes.list(), [])
  await s.volumes.putSpec(id, spec('x', { parameters: { a: '1' } }))
  await s.volumes.putSpec(id, spec('x', { generation: 2 }))
  const got = await s.volumes.get(id)
  t.equal(got?.spec.generation, 2)
  t.same(got?.spec.parameters, {}, 'old fields do not survive')
  t.equal((await s.volumes.list()).length, 1)
})

t.test('putStatus on a missing object is FAILED_PRECONDITION and writes nothing', async (t) => {
  const s = await open(t, t.testdir())
  const id = volumeIdFor('gone')
  await rejectsCsi(t, s.volumes.putStatus(id, ready()), status.FAILED_PRECONDITION, /no longer exists/)
  t.notOk(existsSync(path.join(s.root, 'volumes', `${id}.status.json`)))
  t.equal(await s.volumes.get(id), undefined)
})

t.test('a second instance on the same folder sees writes through watch()', async (t) => {
  const root = t.testdir()
  // A rescan period and poll interval far beyond the wait: only inotify can deliver in time.
  const controller = await open(t, root, 3_600_000)
  const node = await open(t, root, 3_600_000)
  const id = volumeIdFor('shared')
  const seen: string[] = []
  const unwatch = node.volumes.watch((changed) => seen.push(changed))
  t.teardown(unwatch)

  await controller.volumes.putSpec(id, spec('shared'))
  const got = await waitFor(node.volumes, id, (o) => o?.spec.name, 3000, 3_600_000)
  t.equal(got, 'shared', 'node sees the controller\'s spec')
  t.ok(seen.includes(id), 'the node\'s watch listener was told the id')

  await node.volumes.putStatus(id, ready())
  const phase = await waitFor(controller.volumes, id, (o) => o?.status?.phase, 3000, 3_600_000)
  t.equal(phase, 'Ready', 'controller sees the node\'s status')

  await controller.volumes.remove(id)
  const gone = await waitFor(node.volumes, id, (o) => (o === undefined ? true : undefined), 3000, 3_600_000)
  t.equal(gone, true, 'node sees the removal')
  t.same(await node.volumes.list(), [], 'and lists nothing')
})

t.test('refresh() reads the disk even when no notification arrived', async (t) => {
  const root = t.testdir()
  const a = await open(t, root, 3_600_000)
  const b = await open(t, root, 3_600_000)
  const id = volumeIdFor('r')
  await a.volumes.putSpec(id, spec('r'))
  t.equal((await b.volumes.refresh(id))?.spec.name, 'r')
})

t.test('waitFor answers undefined after its timeout, not before', async (t) => {
  const s = await open(t, t.testdir())
  const started = Date.now()
  const r = await waitFor(s.volumes, volumeIdFor('never'), (o) => o?.spec.name, 200, 50)
  const took = Date.now() - started
  t.equal(r, undefined)
  t.ok(took >= 190 && took < 2000, `took ${took} ms`)
})

t.test('open() sweeps stray temp files and orphan statuses', async (t) => {
  const live = volumeIdFor('live')
  const orphan = volumeIdFor('orphan')
  const root = t.testdir({
    volumes: {
      '.x.tmp': 'partial',
      [`.${live}.spec.json.123.1.tmp`]: '{"torn',
      [`${live}.spec.json`]: JSON.stringify(spec('live')),
      [`${orphan}.status.json`]: JSON.stringify(ready()),
    },
  })
  const s = await open(t, root)
  const files = readdirSync(path.join(root, 'volumes')).sort()
  t.same(files, [`${live}.spec.json`], 'temps and the orphan status are gone, the live spec stays')
  t.same((await s.volumes.list()).map((o) => o.id), [live])
  t.equal(await s.volumes.get(orphan), undefined)
})

t.test('a corrupt document is ignored, not fatal', async (t) => {
  const good = volumeIdFor('good')
  const bad = volumeIdFor('bad')
  const root = t.testdir({
    volumes: {
      [`${good}.spec.json`]: JSON.stringify(spec('good')),
      [`${bad}.spec.json`]: '{"name": "bad", ',
      'README.txt': 'not a document',
    },
  })
  const s = await open(t, root)
  t.same((await s.volumes.list()).map((o) => o.id), [good], 'the readable object is served')
  t.equal(await s.volumes.get(bad), undefined, 'the corrupt one is skipped')
  t.ok(existsSync(path.join(root, 'volumes', `${bad}.spec.json`)), 'and left on disk for an operator')
  await s.volumes.putSpec(bad, spec('bad'))
  t.equal((await s.volumes.get(bad))?.spec.name, 'bad', 'and can be rewritten')
})

t.test('a document corrupted while open is ignored by a rescan', async (t) => {
  const root = t.testdir()
  const s = await open(t, root)
  const id = volumeIdFor('later')
  await s.volumes.putSpec(id, spec('later'))
  writeFileSync(path.join(root, 'volumes', `${id}.spec.json`), 'garbage')
  t.equal(await s.volumes.refresh(id), undefined)
  t.same(await s.volumes.list(), [])
})

t.test('ids that are not safe file names are refused before touching the disk', async (t) => {
  const root = t.testdir()
  const s = await open(t, root)
  for (const id of ['../escape', 'a/b', '', '.hidden', 'x'.repeat(129), 'a\u0000b']) {
    await t.rejects(s.volumes.putSpec(id, spec('x')), JSON.stringify(id))
  }
  t.same(readdirSync(root).sort(), ['exports', 'ledger', 'nodes', 'snapshots', 'volumes'])
  t.same(readdirSync(path.join(root, 'volumes')), [])
})

t.test('store errors are CsiErrors (the Store contract in types.ts)', async (t) => {
  const s = await open(t, t.testdir())
  const err = await s.volumes.putSpec('../escape', spec('x')).then(() => undefined, (e: unknown) => e)
  t.ok(err, 'an invalid id is refused')
  t.ok(err instanceof CsiError, `a CsiError (got ${(err as Error)?.name}: ${(err as Error)?.message})`)
})

t.test('nodes and volumes are separate collections', async (t) => {
  const s = await open(t, t.testdir())
  await s.nodes.putSpec('node-a', { topology: { k: 'node-a' }, maxVolumes: 0, kinds: ['dir'], pools: ['default'] })
  t.same(await s.volumes.list(), [])
  t.same((await s.nodes.list()).map((n) => n.id), ['node-a'])
  t.equal(await s.healthy(), true)
})

t.test('list() keeps handing out the same object for an unchanged entry, and a new one once it changes', async (t) => {
  const s = await open(t, t.testdir())
  const [a, b] = [volumeIdFor('a'), volumeIdFor('b')]
  await s.volumes.putSpec(a, spec('a'))
  await s.volumes.putSpec(b, spec('b'))
  const first = await s.volumes.list()
  const again = await s.volumes.list()
  t.not(first, again, 'a fresh array each time (callers may change it)')
  t.equal(first[0], again[0], 'the same object for an unchanged entry')
  first.pop()
  t.equal((await s.volumes.list()).length, 2, 'a caller changing its array changes nothing')
  await s.volumes.putStatus(a, ready())
  const after = await s.volumes.list()
  const byId = (l: typeof after, id: string) => l.find((o) => o.id === id)
  t.not(byId(after, a), byId(again, a), 'a changed entry is a new object')
  t.same(byId(after, a)?.status, ready(), 'carrying the change')
  t.equal(byId(after, b), byId(again, b), 'the other entry is still the same object')
  await s.volumes.remove(b)
  t.same((await s.volumes.list()).map((o) => o.id), [a], 'a removed entry is gone')
})
