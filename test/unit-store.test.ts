// common/store/atomic.ts (crash-safe writes) and common/store/wait.ts (bounded waiting), the
// latter over an in-memory Collection so every timing is under the test's control.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { removeStaleTemps, writeFileAtomic } from '../common/store/atomic.js'
import type { Collection, StoredObject } from '../common/store/types.js'
import { waitFor } from '../common/store/wait.js'

t.test('writeFileAtomic writes, replaces, leaves no temp file and keeps the file private', async (t) => {
  const dir = t.testdir({ 'doc.json': 'old' })
  const file = path.join(dir, 'doc.json')
  await writeFileAtomic(file, '{"v":1}')
  t.equal(readFileSync(file, 'utf8'), '{"v":1}')
  await writeFileAtomic(file, '{"v":2}')
  t.equal(readFileSync(file, 'utf8'), '{"v":2}')
  t.same(readdirSync(dir), ['doc.json'], 'no temp file left')
  t.equal(statSync(file).mode & 0o777, 0o600)
})

t.test('writeFileAtomic into a missing folder fails and creates nothing', async (t) => {
  const dir = t.testdir()
  await t.rejects(writeFileAtomic(path.join(dir, 'missing', 'doc.json'), 'x'), { code: 'ENOENT' })
  t.same(readdirSync(dir), [])
})

t.test('removeStaleTemps removes only dot-prefixed .tmp files', async (t) => {
  // 4194305 is above the kernel's largest pid: a writer that cannot be alive.
  const dir = t.testdir({ '.a.json.4194305.2.tmp': 'x', '.x.tmp': 'x', 'keep.tmp': 'x', '.keep': 'x', 'v.spec.json': '{}' })
  await removeStaleTemps(dir)
  t.same(readdirSync(dir).sort(), ['.keep', 'keep.tmp', 'v.spec.json'])
  t.notOk(existsSync(path.join(dir, '.x.tmp')))
})

type Obj = StoredObject<{ n: number }, { done: boolean }>

/** A Collection whose contents and notifications the test drives by hand. */
class MemCollection implements Collection<{ n: number }, { done: boolean }> {
  readonly objs = new Map<string, Obj>()
  readonly listeners = new Set<(id: string) => void>()
  refreshes = 0
  failGet: Error | undefined
  async get(id: string) {
    if (this.failGet) throw this.failGet
    return this.objs.get(id)
  }
  async refresh(id: string) {
    this.refreshes++
    return this.get(id)
  }
  async list() {
    return [...this.objs.values()]
  }
  async putSpec(id: string, spec: { n: number }) {
    this.objs.set(id, { ...this.objs.get(id), id, spec })
  }
  async create(id: string, spec: { n: number }) {
    if (this.objs.has(id)) return false
    this.objs.set(id, { id, spec })
    return true
  }
  async putStatus(id: string, status: { done: boolean }) {
    const o = this.objs.get(id)
    if (o) this.objs.set(id, { ...o, status })
  }
  async remove(id: string) {
    this.objs.delete(id)
  }
  watch(l: (id: string) => void) {
    this.listeners.add(l)
    return () => { this.listeners.delete(l) }
  }
  /** Changes an object silently (as another process would), then optionally notifies. */
  set(id: string, o: Obj, notify: boolean): void {
    this.objs.set(id, o)
    if (notify) for (const l of this.listeners) l(id)
  }
}

const done = (o: Obj | undefined): true | undefined => (o?.status?.done ? true : undefined)

t.test('waitFor answers at once when the object already qualifies', async (t) => {
  const c = new MemCollection()
  c.set('a', { id: 'a', spec: { n: 1 }, status: { done: true } }, false)
  t.equal(await waitFor(c, 'a', done, 5000, 60_000), true)
  t.equal(c.listeners.size, 0, 'unsubscribed')
})

t.test('waitFor answers on the watch notification for its id, ignoring others', async (t) => {
  const c = new MemCollection()
  const p = waitFor(c, 'a', done, 5000, 60_000)
  let settled = false
  void p.then(() => (settled = true))
  c.set('b', { id: 'b', spec: { n: 1 }, status: { done: true } }, true)
  c.set('a', { id: 'a', spec: { n: 1 }, status: { done: true } }, false)
  await new Promise((r) => setTimeout(r, 50))
  t.notOk(settled, 'a silent change and another id\'s notification do not wake it')
  c.set('a', { id: 'a', spec: { n: 1 }, status: { done: true } }, true)
  t.equal(await p, true)
  t.equal(c.listeners.size, 0, 'unsubscribed')
})

t.test('waitFor polls with refresh() when no notification comes', async (t) => {
  const c = new MemCollection()
  const p = waitFor(c, 'a', done, 5000, 20)
  c.set('a', { id: 'a', spec: { n: 1 }, status: { done: true } }, false)
  t.equal(await p, true)
  t.ok(c.refreshes > 0, 'refresh() was used')
})

t.test('waitFor resolves undefined at the timeout and cleans up', async (t) => {
  const c = new MemCollection()
  const started = Date.now()
  t.equal(await waitFor(c, 'a', done, 100, 20), undefined)
  t.ok(Date.now() - started >= 95, 'not before the timeout')
  const before = c.refreshes
  await new Promise((r) => setTimeout(r, 80))
  t.equal(c.refreshes, before, 'polling stopped')
  t.equal(c.listeners.size, 0)
})

t.test('waitFor rejects with the store\'s error', async (t) => {
  const c = new MemCollection()
  c.failGet = new Error('store down')
  await t.rejects(waitFor(c, 'a', done, 5000, 60_000), { message: 'store down' })
  t.equal(c.listeners.size, 0)
})

t.test('waitFor lets decide() see a removal (undefined)', async (t) => {
  const c = new MemCollection()
  c.set('a', { id: 'a', spec: { n: 1 } }, false)
  const p = waitFor(c, 'a', (o) => (o === undefined ? 'gone' : undefined), 5000, 60_000)
  c.objs.delete('a')
  for (const l of c.listeners) l('a')
  t.equal(await p, 'gone')
})
