// The local store's ledger (compare-and-swap over a folder) and create-if-absent, with several
// writers at once: instances in this process, and separate processes on one folder, as two
// controller processes sharing a state folder would be. The Kubernetes implementation is held
// to the same semantics in process-controllers.test.ts.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { silentLogger } from '../common/log.js'
import { LocalLedger } from '../common/store/local-ledger.js'
import { LocalStore } from '../common/store/local.js'
import { ROOT, requireBuilt } from './helpers/driver.js'

const run = promisify(execFile)

interface Counter {
  n: number
  by?: Record<string, number>
}

// A store's ledger is typed for the controllers' document (LedgerDoc) but keeps any JSON document;
// the two-store test counts with its own.
const counters = (s: LocalStore): LocalLedger<Counter> => s.ledger as LocalLedger<unknown> as LocalLedger<Counter>

const bump = (who: string) => (cur: Counter | undefined) => {
  const n = (cur?.n ?? 0) + 1
  return { next: { n, by: { ...cur?.by, [who]: (cur?.by?.[who] ?? 0) + 1 } }, result: n }
}

t.test('update reads, decides and writes; no next means no write', async (t) => {
  const l = new LocalLedger<Counter>(t.testdir())
  await l.open()
  t.equal(await l.get('c'), undefined, 'a document never written is undefined')
  t.equal(await l.update('c', bump('a')), 1)
  t.equal(await l.update('c', bump('a')), 2)
  t.same(await l.get('c'), { n: 2, by: { a: 2 } })
  t.equal(await l.update('c', (cur) => ({ result: cur?.n })), 2, 'a change that writes nothing still answers')
  t.same(readdirSync(l.dir), ['c.v2.json'], 'superseded versions are pruned; no temp or intent file is left')
  await t.rejects(l.update('../x', bump('a')), { code: 3 }, 'an id that is not a safe file name is INVALID_ARGUMENT')
  await t.rejects(l.get('../x'), { code: 3 }, 'for reads too')
})

t.test('a change that throws writes nothing and the error reaches the caller', async (t) => {
  const l = new LocalLedger<Counter>(t.testdir())
  await l.open()
  await l.update('c', bump('a'))
  await t.rejects(l.update('c', () => { throw new Error('no room') }), /no room/)
  t.same(await l.get('c'), { n: 1, by: { a: 1 } })
})

t.test('concurrent updates from two stores on one folder lose nothing', async (t) => {
  const root = t.testdir()
  const a = await LocalStore.open(root, silentLogger(), 3_600_000)
  const b = await LocalStore.open(root, silentLogger(), 3_600_000)
  t.teardown(async () => { await a.close(); await b.close() })
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => counters(i % 2 ? a : b).update('c', bump(i % 2 ? 'a' : 'b'))))
  t.same([...results].sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i + 1), 'every update saw a distinct count: each won its own version')
  t.same(await counters(a).get('c'), { n: 60, by: { a: 30, b: 30 } })
})

t.test('separate processes on one folder: every increment lands exactly once', async (t) => {
  requireBuilt()
  const dir = t.testdir()
  const mod = path.join(ROOT, 'dist/common/store/local-ledger.js')
  // Each child increments its own count and the shared one, 150 times, as fast as it can.
  const child = (who: string) => run(process.execPath, ['--input-type=module', '-e', `
    const { LocalLedger } = await import(${JSON.stringify(mod)})
    const l = new LocalLedger(${JSON.stringify(dir)})
    await l.open()
    for (let i = 0; i < 150; i++) await l.update('c', (cur) => ({ next: { n: (cur?.n ?? 0) + 1, by: { ...cur?.by, ${who}: (cur?.by?.${who} ?? 0) + 1 } }, result: 0 }))
  `], { env: { ...process.env, NODE_OPTIONS: '' } })
  await Promise.all([child('a'), child('b'), child('c')])
  const l = new LocalLedger<Counter>(dir)
  t.same(await l.get('c'), { n: 450, by: { a: 150, b: 150, c: 150 } }, 'no lost update: the total is the sum of what each process wrote')
})

t.test('create writes only when the object is absent, once across instances', async (t) => {
  const root = t.testdir()
  const a = await LocalStore.open(root, silentLogger(), 3_600_000)
  const b = await LocalStore.open(root, silentLogger(), 3_600_000)
  t.teardown(async () => { await a.close(); await b.close() })
  const spec = (node: string) => ({ name: 'x', node, kind: 'dir' as const, pool: 'default', capacityBytes: '1', accessType: 'mount' as const, parameters: {}, createdAt: '', generation: 1 })
  const made = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).volumes.create('v-x', spec(`n${i}`))))
  t.equal(made.filter(Boolean).length, 1, 'exactly one create made it')
  const winner = made.findIndex(Boolean)
  t.equal((await a.volumes.refresh('v-x'))?.spec.node, `n${winner}`, 'and its spec is the one stored')
  t.equal((await b.volumes.get('v-x'))?.spec.node, `n${winner}`, 'a loser\'s cache holds the winner\'s spec')
  t.notOk(await a.volumes.create('v-x', spec('again')), 'a later create of an existing object is false')
  t.same(readdirSync(path.join(root, 'volumes')), ['v-x.spec.json'], 'no temp file is left')
})
