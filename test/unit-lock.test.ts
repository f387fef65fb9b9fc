// common/lock.ts: TryLocks answer ABORTED at once; Mutexes queue in order; GroupCommit batches.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { GroupCommit, Mutexes, TryLocks, type Outcome } from '../common/lock.js'
import { rejectsCsi } from './helpers/csi.js'

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

t.test('TryLocks: a second run on a held key is ABORTED at once', async (t) => {
  const locks = new TryLocks()
  const gate = deferred()
  const first = locks.run('v-1', 'volume v-1', () => gate.promise.then(() => 'first'))
  t.ok(locks.isHeld('v-1'))
  await rejectsCsi(t, locks.run('v-1', 'volume v-1', () => 'second'), status.ABORTED, /volume v-1/)
  t.equal(await locks.run('v-2', 'volume v-2', () => 'other key'), 'other key', 'other keys are free')
  gate.resolve()
  t.equal(await first, 'first')
  t.notOk(locks.isHeld('v-1'), 'released after success')
  t.equal(await locks.run('v-1', 'volume v-1', () => 'again'), 'again')
})

t.test('TryLocks: released when fn throws or rejects', async (t) => {
  const locks = new TryLocks()
  await t.rejects(locks.run('k', 'k', () => { throw new Error('sync') }), { message: 'sync' })
  t.notOk(locks.isHeld('k'))
  await t.rejects(locks.run('k', 'k', async () => { throw new Error('async') }), { message: 'async' })
  t.notOk(locks.isHeld('k'))
})

t.test('TryLocks: several keys are taken all or none', async (t) => {
  const locks = new TryLocks()
  const gate = deferred()
  const holder = locks.run('b', 'b', () => gate.promise)
  let ran = false
  await rejectsCsi(t, locks.run(['a', 'b'], 'a and b', () => { ran = true }), status.ABORTED)
  t.notOk(ran, 'fn did not run')
  t.notOk(locks.isHeld('a'), 'a was not left taken')
  gate.resolve()
  await holder
  await locks.run(['a', 'b'], 'a and b', () => {
    t.ok(locks.isHeld('a') && locks.isHeld('b'), 'both held inside')
  })
  t.notOk(locks.isHeld('a') || locks.isHeld('b'))
})

t.test('Mutexes: same key runs in call order, one at a time; a failure does not block the queue', async (t) => {
  const m = new Mutexes()
  const order: string[] = []
  let active = 0
  let maxActive = 0
  const step = (name: string, ms: number, fail = false) => m.run('node', async () => {
    active++
    maxActive = Math.max(maxActive, active)
    order.push(`start ${name}`)
    await new Promise((r) => setTimeout(r, ms))
    order.push(`end ${name}`)
    active--
    if (fail) throw new Error(name)
    return name
  })
  const results = await Promise.allSettled([step('a', 30), step('b', 1, true), step('c', 10)])
  t.same(order, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  t.equal(maxActive, 1)
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.equal((results[2] as PromiseFulfilledResult<string>).value, 'c')
})

t.test('Mutexes: different keys run concurrently', async (t) => {
  const m = new Mutexes()
  const gate = deferred()
  const blocked = m.run('x', () => gate.promise)
  const other = await Promise.race([m.run('y', () => 'y ran'), new Promise((r) => setTimeout(() => r('stuck'), 500).unref())])
  t.equal(other, 'y ran')
  gate.resolve()
  await blocked
})

t.test('Mutexes: a synchronous throw is delivered as a rejection and the key frees', async (t) => {
  const m = new Mutexes()
  await t.rejects(m.run('k', () => { throw new Error('boom') }), { message: 'boom' })
  t.equal(await m.run('k', () => 'next'), 'next')
})

t.test('GroupCommit: items queued during a flush go together into the next one, each answered in order', async (t) => {
  const gate = deferred()
  const flushes: number[][] = []
  let active = 0
  let maxActive = 0
  const g = new GroupCommit<number, string>(async (items) => {
    flushes.push(items)
    active++
    maxActive = Math.max(maxActive, active)
    if (flushes.length === 1) await gate.promise
    active--
    return items.map((i): Outcome<string> => (i % 2 === 0 ? { value: `ok ${i}` } : { error: new Error(`odd ${i}`) }))
  })
  const first = g.submit(0)
  const rest = [1, 2, 3, 4].map((i) => g.submit(i))
  await new Promise((r) => setImmediate(r))
  t.same(flushes, [[0]], 'the first flush started alone; the others wait for it')
  gate.resolve()
  t.equal(await first, 'ok 0')
  const settled = await Promise.allSettled(rest)
  t.same(flushes, [[0], [1, 2, 3, 4]], 'the four queued items made one flush')
  t.equal(maxActive, 1, 'one flush at a time')
  t.same(settled.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)), ['odd 1', 'ok 2', 'odd 3', 'ok 4'], 'each item gets its own answer')
})

t.test('GroupCommit: a throwing flush fails every item in it, and the next flush runs', async (t) => {
  let n = 0
  const gate = deferred()
  const g = new GroupCommit<string, string>(async (items) => {
    n++
    if (n === 1) {
      await gate.promise
      throw new Error('write failed')
    }
    return items.map((i) => ({ value: i }))
  })
  const a = g.submit('a')
  const b = g.submit('b')
  gate.resolve()
  await t.rejects(a, { message: 'write failed' })
  t.equal(await b, 'b', 'b was queued behind the failed flush and is written by the next')
  await t.rejects(new GroupCommit<string, string>(async () => []).submit('x'), { message: /answered 0 of 1/ }, 'a flush that forgets an item fails it')
})

t.test('GroupCommit: an item is not answered before its flush returns', async (t) => {
  const gate = deferred()
  const g = new GroupCommit<string, string>(async (items) => {
    await gate.promise
    return items.map((i) => ({ value: i }))
  })
  let answered = false
  const p = g.submit('x').then((v) => { answered = true; return v })
  await new Promise((r) => setTimeout(r, 20))
  t.notOk(answered, 'still waiting on the write')
  gate.resolve()
  t.equal(await p, 'x')
})
