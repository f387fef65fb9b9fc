// KubeCollection's cache against resourceVersions used as the Kubernetes API defines them: opaque
// strings a client may only compare for equality and pass back. The resourceVersions here are
// letters, or numbers that run against the order of the writes, so any cache that orders them
// goes wrong. The API server and its watch are faked because the point is the order in which
// watch events, write answers, reads and lists arrive, which a real API server cannot be made to
// reorder. Every scenario numbers the spec (n) in the order the server commits the writes, so
// "the cache never regresses" is "the n that get() shows never goes down", and "never ignores a
// newer event" is "it ends on the last n".
import t, { type Test } from 'tap'
import type { CustomObjectsApi } from '@kubernetes/client-node'
import { silentLogger } from '../common/log.js'
import { KubeCollection, type KubeCollectionOptions, type KubeObject, type Watcher } from '../common/store/kube.js'

type Obj = KubeObject<{ n: number }, { done: boolean }>
type Event = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; obj: Obj }

const thing = (name: string, n: number): Obj => ({ apiVersion: 'tscsi.dev/v1alpha1', kind: 'Thing', metadata: { name }, spec: { n } })
const apiError = (code: number, message: string): Error => Object.assign(new Error(message), { code })
const ascending = (ns: (number | undefined)[]): (number | undefined)[] => [...ns].sort((a, b) => (a ?? 0) - (b ?? 0))
const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

/** A gate that holds answers back until the test opens it. */
class Gate {
  private opened: Promise<void> = Promise.resolve()
  private openIt: () => void = () => {}
  close(): void {
    this.opened = new Promise((r) => { this.openIt = r })
  }
  open(): void {
    this.openIt()
  }
  pass(): Promise<void> {
    return this.opened
  }
}

/**
 * The API server: it commits a request when it receives it, then answers once the request's gate
 * is open. Each commit takes the next scripted resourceVersion and queues a watch event, sent
 * when the test calls deliver(), in commit order, as a watch delivers them.
 */
class FakeApi {
  readonly objs = new Map<string, Obj>()
  readonly pending: Event[] = []
  readonly writes = new Gate()
  readonly reads = new Gate()
  readonly lists = new Gate()
  rvs: string[] = []
  listed = 0
  got = 0

  constructor(private readonly watch: FakeWatch) {}

  /** Another process's write: committed now, seen by the collection only through the watch. */
  other(name: string, n: number | undefined): void {
    if (n === undefined) this.remove(name)
    else this.commit(this.objs.has(name) ? 'MODIFIED' : 'ADDED', { ...this.objs.get(name) ?? thing(name, n), spec: { n } })
  }

  /** Sends the first `count` queued watch events (all of them by default). */
  deliver(count = this.pending.length): void {
    for (const e of this.pending.splice(0, count)) this.watch.send(e.type, e.obj)
  }

  async listClusterCustomObject() {
    // The list is a snapshot taken now; the watch from its resourceVersion sends only what follows.
    const items = [...this.objs.values()].map((o) => structuredClone(o))
    this.pending.length = 0
    this.listed++
    await this.lists.pass()
    return { items, metadata: { resourceVersion: `list-${this.rvs.length}` } }
  }

  async getClusterCustomObject({ name }: { name: string }) {
    const o = this.objs.get(name)
    this.got++
    await this.reads.pass()
    if (!o) throw apiError(404, 'Not Found')
    return structuredClone(o)
  }

  async createClusterCustomObject({ body }: { body: Obj }) {
    if (this.objs.has(body.metadata.name)) throw apiError(409, 'AlreadyExists')
    return this.answer(this.commit('ADDED', body))
  }

  async replaceClusterCustomObject({ name, body }: { name: string; body: Obj }) {
    const cur = this.current(name, body)
    if (body.metadata.deletionTimestamp && !body.metadata.finalizers?.length) {
      // As the API server does: dropping the last finalizer of a deleting object deletes it, and
      // the answer is the deleted object at the delete's version.
      this.remove(name)
      return this.answer(structuredClone(this.pending.at(-1)!.obj))
    }
    return this.answer(this.commit('MODIFIED', { ...body, ...(cur.status && { status: cur.status }) }))
  }

  async replaceClusterCustomObjectStatus({ name, body }: { name: string; body: Obj }) {
    const cur = this.current(name, body)
    return this.answer(this.commit('MODIFIED', { ...cur, ...(body.status && { status: body.status }) }))
  }

  async deleteClusterCustomObject({ name }: { name: string }) {
    if (!this.objs.has(name)) throw apiError(404, 'Not Found')
    this.remove(name)
    return this.answer({})
  }

  private current(name: string, body: Obj): Obj {
    const cur = this.objs.get(name)
    if (!cur) throw apiError(404, 'Not Found')
    if (body.metadata.resourceVersion !== cur.metadata.resourceVersion) throw apiError(409, 'Conflict')
    return cur
  }

  private nextRv(): string {
    const rv = this.rvs.shift()
    if (rv === undefined) throw new Error('the test scripted too few resourceVersions')
    return rv
  }

  private commit(type: Event['type'], o: Obj): Obj {
    const stored = { ...o, metadata: { ...o.metadata, resourceVersion: this.nextRv() } }
    this.objs.set(o.metadata.name, stored)
    this.pending.push({ type, obj: structuredClone(stored) })
    return structuredClone(stored)
  }

  private remove(name: string): void {
    const gone = this.objs.get(name)!
    this.objs.delete(name)
    this.pending.push({ type: 'DELETED', obj: { ...structuredClone(gone), metadata: { ...gone.metadata, resourceVersion: this.nextRv() } } })
  }

  private async answer<R>(r: R): Promise<R> {
    await this.writes.pass()
    return r
  }
}

class FakeWatch implements Watcher {
  starts = 0
  private callback: ((type: string, obj: unknown) => void) | undefined
  private done: ((err: unknown) => void) | undefined

  async watch(_path: string, _params: unknown, callback: (type: string, obj: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    this.starts++
    this.callback = callback
    this.done = done
    return new AbortController()
  }

  send(type: string, obj: Obj): void {
    this.callback!(type, structuredClone(obj))
  }

  end(err: unknown): void {
    this.done!(err)
  }
}

async function world(t: Test, rvs: string[], initial: Record<string, number>, options: Partial<KubeCollectionOptions<{ n: number }, { done: boolean }>> = {}, seed: Obj[] = []) {
  const watch = new FakeWatch()
  const api = new FakeApi(watch)
  api.rvs = rvs
  for (const [name, n] of Object.entries(initial)) api.other(name, n)
  for (const o of seed) api.objs.set(o.metadata.name, o)
  api.pending.length = 0
  const coll = new KubeCollection<{ n: number }, { done: boolean }>(api as unknown as CustomObjectsApi, watch, { plural: 'things', kind: 'Thing', ...options }, silentLogger())
  await coll.open()
  t.teardown(() => coll.close())
  const seen: (number | undefined)[] = []
  const notified: string[] = []
  coll.watch((id) => notified.push(id))
  /** What get() shows now, recorded so the test can check the whole history at the end. */
  const shows = async (id: string): Promise<number | undefined> => {
    const n = (await coll.get(id))?.spec.n
    seen.push(n)
    return n
  }
  return { api, watch, coll, seen, notified, shows }
}

/** Waits until the collection has listed again (a restart is delayed by the backoff). */
async function relisted(watch: FakeWatch, starts: number): Promise<void> {
  for (let i = 0; i < 300 && watch.starts < starts; i++) await new Promise((r) => setTimeout(r, 10))
}

const orders = [
  { name: 'opaque strings', rvs: ['b7f', 'x9', 'a01', '0', '0a'] },
  { name: 'numbers that run against the writes', rvs: ['98', '1000', '999', '5', '42'] },
]

for (const { name, rvs } of orders) {
  t.test(`${name}: a late event older than our write does not replace it, and a newer one is taken`, async (t) => {
    const { api, coll, seen, notified, shows } = await world(t, rvs, { a: 1 })
    api.other('a', 2) // another process's write, its event not delivered yet
    await coll.putSpec('a', { n: 3 }) // 409 on the cached object, re-read, written
    t.equal(await shows('a'), 3, 'our write is read back at once')
    api.deliver(1)
    t.equal(await shows('a'), 3, 'the older event (n=2) that arrives after our write does not replace it')
    api.deliver()
    t.equal(await shows('a'), 3, 'the event of our own write changes nothing')
    const before = notified.length
    api.other('a', 4)
    api.deliver()
    t.equal(await shows('a'), 4, 'a newer write by another process is taken, whatever its resourceVersion looks like')
    t.ok(notified.length > before, 'and listeners are told')
    t.same(seen, ascending(seen), `never went back: ${seen.join(' ')}`)
  })
}

t.test('the event of our write arriving before the write answers: the cache keeps the newer event', async (t) => {
  const { api, coll, seen, shows } = await world(t, ['k', 'w', 'o', 'o2'], { a: 1 })
  api.writes.close()
  const writing = coll.putSpec('a', { n: 2 }) // committed as "w", answer held
  await tick()
  api.other('a', 3)
  api.deliver() // "w", then another process's "o"
  t.equal(await shows('a'), 3)
  api.writes.open()
  await writing
  t.equal(await shows('a'), 3, 'the late answer (n=2) does not replace the newer event')
  api.other('a', 4)
  api.deliver()
  t.equal(await shows('a'), 4, 'and the cache is not left waiting for an event it has already had')
  t.same(seen, ascending(seen), 'never went back')
})

t.test('a DELETED event of an older incarnation arriving after our create does not remove it', async (t) => {
  const { api, coll, seen, shows } = await world(t, ['k1', 'k2', 'k3', 'k4'], { a: 1 })
  api.other('a', undefined) // deleted by another process as "k2", its event not delivered yet
  t.equal(await coll.create('a', { n: 2 }), true, 'created anew as "k3"')
  t.equal(await shows('a'), 2)
  api.deliver(1)
  t.equal(await shows('a'), 2, 'the late DELETED of the old object leaves ours')
  api.deliver()
  api.other('a', 3)
  api.deliver()
  t.equal(await shows('a'), 3)
  t.same(seen, ascending(seen), 'never went back')
})

t.test('a read answered before our write but arriving after it does not undo the write', async (t) => {
  const { api, coll, seen, shows } = await world(t, ['zz', 'aa'], { a: 1 })
  api.reads.close()
  const reading = coll.refresh('a')
  await tick()
  const writing = coll.putSpec('a', { n: 2 })
  await tick()
  api.reads.open()
  await Promise.all([reading, writing])
  t.equal(await shows('a'), 2, 'the write stands')
  api.deliver()
  t.equal(await shows('a'), 2)
  t.same(seen, ascending(seen), 'never went back')
})

t.test('a relist after our write is newer than it: the cache takes the list and the events after it', async (t) => {
  const { api, watch, coll, seen, shows } = await world(t, ['p0', 'p', 'q', 'r'], { a: 1 })
  await coll.putSpec('a', { n: 2 })
  api.other('a', 3)
  t.equal(await shows('a'), 2)
  watch.end(apiError(410, 'Gone')) // neither event was delivered; the list has both
  const got = api.got
  await relisted(watch, 2)
  t.equal(await shows('a'), 3, 'the list is newer than our write')
  await tick()
  t.equal(api.got, got, 'which the list alone settles: nothing is read again')
  api.other('a', 4)
  api.deliver()
  t.equal(await shows('a'), 4, 'and the cache is not left waiting for the event of our write')
  t.same(seen, ascending(seen), 'never went back')
})

t.test('a relist that overlaps our write: the cache re-reads rather than guess which is newer', async (t) => {
  const { api, watch, coll, seen, shows } = await world(t, ['k', 'p', 'q', 'r'], { a: 1 })
  api.lists.close()
  watch.end(apiError(410, 'Gone'))
  for (let i = 0; i < 300 && api.listed < 2; i++) await new Promise((r) => setTimeout(r, 10))
  // The list's snapshot (n=1) is taken; our write and another process's land before its answer.
  await coll.putSpec('a', { n: 2 })
  api.other('a', 3)
  api.lists.open()
  await relisted(watch, 2)
  await shows('a') // our write, or already the re-read: never the list's n=1
  for (let i = 0; i < 100 && (await coll.get('a'))?.spec.n !== 3; i++) await tick()
  t.equal(await shows('a'), 3, 'the older list (n=1) did not replace our write; a re-read found the newest')
  api.deliver() // the events after the snapshot: "p" (ours) and "q"
  t.equal(await shows('a'), 3)
  api.other('a', 4)
  api.deliver()
  t.equal(await shows('a'), 4)
  t.same(seen, ascending(seen), 'never went back')
})

t.test('a status write keeps read-your-writes too', async (t) => {
  const { api, coll, seen, shows } = await world(t, ['s1', 's0', 's2'], { a: 1 })
  api.other('a', 2) // another process's spec write, its event not delivered yet
  await coll.putStatus('a', { done: true }) // 409 on the cached object, re-read, written
  t.same((await coll.get('a'))?.status, { done: true })
  api.deliver(1)
  t.same((await coll.get('a'))?.status, { done: true }, 'the late event of the spec write, without the status, does not drop it')
  api.deliver()
  t.equal(await shows('a'), 2)
  t.same((await coll.get('a'))?.status, { done: true })
  t.same(seen, ascending(seen), 'never went back')
})

t.test('releasing the last finalizer: the answer is the deleted object, and its DELETED event ends it', async (t) => {
  const deleting = { ...thing('a', 1), metadata: { name: 'a', resourceVersion: 'f0', finalizers: ['f'], deletionTimestamp: '2026-12-01T00:00:00Z' } }
  const { api, coll, notified } = await world(t, ['f1', 'f2', 'f3', 'f4'], {}, { finalizer: 'f', releases: (s) => s.done }, [deleting])
  await coll.putStatus('a', { done: true }) // the status ("f1"), then the release: deleted as "f2"
  t.notOk(api.objs.has('a'), 'the API server deleted it')
  api.deliver()
  t.equal(await coll.get('a'), undefined, 'the DELETED event, at the version the release was answered with, ends the answer')
  t.ok(notified.includes('a'))
  api.other('a', 2)
  api.deliver()
  t.equal((await coll.get('a'))?.spec.n, 2, 'an object made again later is seen')
})

t.test('a watch that keeps ending with nothing delivered is opened again after a backoff, not at once', async (t) => {
  const { watch } = await world(t, ['b1'], { a: 1 })
  watch.end(null)
  await new Promise((r) => setTimeout(r, 300))
  t.equal(watch.starts, 1, 'not yet after 300 ms')
  await relisted(watch, 2)
  t.equal(watch.starts, 2, 'after the backoff')
})

t.test('our object deleted by another process: a late DELETED of an older incarnation does not bring ours back', async (t) => {
  const { api, coll } = await world(t, ['k1', 'k2', 'k3', 'k4', 'k5'], { a: 1 })
  api.other('a', undefined) // "k2": the old object goes
  t.equal(await coll.create('a', { n: 2 }), true) // "k3": ours
  api.other('a', undefined) // "k4": ours goes too
  t.equal(await coll.refresh('a'), undefined, 'read: gone')
  const shown: (number | undefined)[] = []
  for (let i = 0; i < 3; i++) {
    api.deliver(1) // DELETED k2, ADDED k3, DELETED k4
    shown.push((await coll.get('a'))?.spec.n)
  }
  t.same(shown, [undefined, undefined, undefined], 'neither the old object nor ours shows again')
  api.other('a', 3)
  api.deliver()
  t.equal((await coll.get('a'))?.spec.n, 3, 'an object made again later is seen')
})

t.test('our new object deleted by another process before the watch sent it: its late ADDED does not bring it back', async (t) => {
  const { api, coll } = await world(t, ['m1', 'm2'], {})
  t.equal(await coll.create('a', { n: 1 }), true) // "m1"
  api.other('a', undefined) // "m2"
  t.equal(await coll.refresh('a'), undefined, 'read: gone, while the watch has sent nothing of it')
  api.deliver(1)
  t.equal(await coll.get('a'), undefined, 'the ADDED of ours that comes after the read does not show')
  api.deliver()
  t.equal(await coll.get('a'), undefined)
})

t.test('a DELETED of an older object arriving while our read is out is not taken for the delete of ours', async (t) => {
  const { api, coll } = await world(t, ['d1', 'd2', 'd3', 'd4'], { a: 1 })
  api.other('a', undefined) // "d2": the old object goes
  t.equal(await coll.create('a', { n: 2 }), true) // "d3": ours
  api.other('a', undefined) // "d4": ours goes too
  api.reads.close()
  const reading = coll.refresh('a')
  await tick()
  api.deliver(1) // DELETED d2, while the read is out
  api.reads.open()
  t.equal(await reading, undefined)
  api.deliver(1) // ADDED d3
  t.equal(await coll.get('a'), undefined, 'ours does not show again')
  api.deliver()
  t.equal(await coll.get('a'), undefined)
})

t.test('the events of our object and of its delete arriving while our read is out: a later object shows', async (t) => {
  const { api, coll } = await world(t, ['e1', 'e2', 'e3'], {})
  t.equal(await coll.create('a', { n: 1 }), true) // "e1"
  api.other('a', undefined) // "e2"
  api.reads.close()
  const reading = coll.refresh('a')
  await tick()
  api.deliver() // ADDED e1, DELETED e2, while the read is out
  api.reads.open()
  t.equal(await reading, undefined)
  api.other('a', 2) // "e3": made again
  api.deliver()
  t.equal((await coll.get('a'))?.spec.n, 2, 'the read is not left waiting for a delete the watch already sent')
})
