// common/lock.ts: TryLocks answer ABORTED at once; Mutexes queue in order.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { Mutexes, TryLocks } from '../common/lock.js'
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
