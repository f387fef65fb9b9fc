// Concurrency against the REAL controller and node plugin (root): many calls at once on the same
// volume and target, and many volumes through full lifecycles at once.
//
// The CSI spec allows a plugin to refuse a call while another operation on the same volume is
// pending (ABORTED; the CO retries) or to serialise them; it never allows corruption, a deadlock,
// or an INTERNAL/UNKNOWN answer caused by the interleaving. Every call here must finish within a
// deadline and answer OK, ABORTED or the precondition code the state explains; after each storm
// the mount table, the volume directories and the store's documents must agree.
//
//   CONC_SEED=<n> replays the interleavings (the seed is printed).
import t from 'tap'
import { existsSync, readdirSync, readFileSync, realpathSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { client, mountCap, testRig, type AccessMode } from './helpers/driver.js'
import { isUnder } from './helpers/canary.js'
import { codeName, isRoot, outcome, prng, startIn, type Outcome } from './helpers/rpc-outcome.js'
import { readMountInfo } from '../native/index.js'

const OK = 0
const EXISTS = 6
const PRECONDITION = 9
const ABORTED = 10
const SEED = process.env.CONC_SEED !== undefined ? Number(process.env.CONC_SEED) : (Date.now() ^ (process.pid << 8)) >>> 0
const CALL_DEADLINE_MS = 30_000

if (!isRoot()) {
  t.test('concurrency on one volume and across volumes', { skip: 'needs root: starts the real driver, which mounts' }, () => {})
} else {
  t.test('concurrency on one volume and across volumes', async (t) => {
    t.comment(`CONC_SEED=${SEED}`)
    const r = prng(SEED)
    const rig = testRig(t)
    const dir = realpathSync(rig.dir)
    const kub = path.join(dir, 'kubelet')
    const data = path.join(dir, 'data')
    const storeDir = path.join(dir, 'state/store')
    const ctl = await startIn(dir, 'controller', rig.dir, ['--realise-timeout', '20s'], t)
    rig.procs.push(ctl)
    const node = await startIn(dir, 'node', rig.dir, [], t)
    rig.procs.push(node)
    const c = client('Controller', ctl.socket)
    const n = client('Node', node.socket)
    t.teardown(() => { c.close(); n.close() })

    /** Mounts at exactly p, with the volume each shows (from mountinfo's root field). */
    const mountsAt = (p: string): string[] => readMountInfo().filter((m) => m.mountPoint === p).map((m) => path.basename(m.root))
    const mountsUnder = (p: string): string[] => readMountInfo().filter((m) => isUnder(m.mountPoint, p)).map((m) => m.mountPoint)
    const tally = (codes: Map<string, number>, o: Outcome): void => { codes.set(codeName(o.code), (codes.get(codeName(o.code)) ?? 0) + 1) }
    const fmt = (codes: Map<string, number>): string => [...codes].map(([k, v]) => `${k} ${v}`).join(', ')

    /** Runs calls concurrently; returns outcomes and the wall time, failing on a call past its deadline. */
    async function storm(calls: (() => Promise<unknown>)[]): Promise<{ outs: Outcome[]; ms: number }> {
      const t0 = Date.now()
      const outs = await Promise.all(calls.map((f) => outcome(f())))
      return { outs, ms: Date.now() - t0 }
    }

    /** Retries ABORTED (the spec's "operation pending") with backoff, as a CO does. */
    async function settle(f: () => Promise<unknown>, tries = 60): Promise<Outcome> {
      let o = await outcome(f())
      for (let i = 0; i < tries && o.code === ABORTED; i++) {
        await new Promise((res) => setTimeout(res, 20 + r.int(80)))
        o = await outcome(f())
      }
      return o
    }

    async function createVolume(name: string, mode: AccessMode = 'SINGLE_NODE_WRITER'): Promise<{ volume_id: string; volume_context: Record<string, string> }> {
      const o = await settle(() => c.CreateVolume({ name, volume_capabilities: [mountCap(mode)] }, CALL_DEADLINE_MS))
      if (o.code !== OK) throw new Error(`CreateVolume ${name}: ${codeName(o.code)} ${o.message}`)
      return o.res.volume
    }

    // ------------------------------------------------------------------ one volume, one target
    await t.test('50 concurrent stage/unstage/publish/unpublish on one volume and one target', async (tt) => {
      const vol = await createVolume('same-1')
      const staging = path.join(kub, 'same-1/staging')
      const target = path.join(kub, 'same-1/pod/mount')
      mkdirSync(staging, { recursive: true })
      mkdirSync(path.dirname(target), { recursive: true })
      const ctx = vol.volume_context
      const ops: Record<string, () => Promise<unknown>> = {
        stage: () => n.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: mountCap(), volume_context: ctx }, CALL_DEADLINE_MS),
        unstage: () => n.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging }, CALL_DEADLINE_MS),
        publish: () => n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), volume_context: ctx }, CALL_DEADLINE_MS),
        unpublish: () => n.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: target }, CALL_DEADLINE_MS),
        stats: () => n.NodeGetVolumeStats({ volume_id: vol.volume_id, volume_path: target }, CALL_DEADLINE_MS),
      }
      // What each may answer besides OK and ABORTED, given some interleaving.
      const allowed: Record<string, number[]> = {
        stage: [OK, ABORTED],
        unstage: [OK, ABORTED],
        publish: [OK, ABORTED, PRECONDITION], // not staged (yet / any more)
        unpublish: [OK, ABORTED],
        stats: [OK, ABORTED, 5 /* NOT_FOUND: not mounted there right now */],
      }
      const names = Object.keys(ops)
      const codes = new Map<string, number>()
      const bad: string[] = []
      const inconsistent: string[] = []
      let slowest = 0
      for (let round = 0; round < 8; round++) {
        const kinds = Array.from({ length: 50 }, () => r.pick(names))
        const { outs, ms } = await storm(kinds.map((k) => ops[k]!))
        slowest = Math.max(slowest, ms)
        outs.forEach((o, i) => {
          tally(codes, o)
          const k = kinds[i]!
          if (!allowed[k]!.includes(o.code)) bad.push(`round ${round} ${k}: ${codeName(o.code)} ${o.message}`)
        })
        // The state after the storm: at most one layer at each path, each a mount of this volume,
        // and a target that exists only as a directory.
        for (const [what, p] of [['staging', staging], ['target', target]] as const) {
          const at = mountsAt(p)
          if (at.length > 1) inconsistent.push(`round ${round}: ${at.length} stacked mounts at the ${what}`)
          if (at.some((id) => id !== vol.volume_id)) inconsistent.push(`round ${round}: the ${what} shows ${at.join(', ')}`)
        }
        if (existsSync(target) && !readMountInfo().some((m) => m.mountPoint === target) && readdirSync(target).length > 0) {
          inconsistent.push(`round ${round}: the target is an unmounted directory with content`)
        }
      }
      tt.comment(`codes over 400 calls: ${fmt(codes)}; slowest storm ${slowest} ms`)
      tt.same(bad.slice(0, 10), [], `every call answered OK, ABORTED or the precondition its state explains (${bad.length} others)`)
      tt.same(inconsistent.slice(0, 10), [], 'after every storm the mounts are consistent (no stacking, only this volume)')
      tt.ok(slowest < CALL_DEADLINE_MS, `no storm came near the deadline (slowest ${slowest} ms)`)
      // Take it all down: the calls must work whatever the storm left.
      tt.equal((await settle(ops.unpublish!)).code, OK, 'unpublish after the storm')
      tt.equal((await settle(ops.unstage!)).code, OK, 'unstage after the storm')
      tt.same(mountsUnder(path.join(kub, 'same-1')), [], 'no mount is left')
      tt.notOk(existsSync(target), 'the target the driver created is gone')
      tt.equal((await settle(() => c.DeleteVolume({ volume_id: vol.volume_id }, CALL_DEADLINE_MS))).code, OK, 'the volume can be deleted')
    })

    // ------------------------------------------------------------------ two volumes, one target
    await t.test('two volumes published onto one target at once: exactly one wins', async (tt) => {
      const a = await createVolume('same-2a')
      const b = await createVolume('same-2b')
      const target = path.join(kub, 'same-2/pod/mount')
      mkdirSync(path.dirname(target), { recursive: true })
      for (const v of [a, b]) {
        mkdirSync(path.join(kub, 'same-2', v.volume_id), { recursive: true })
        await n.NodeStageVolume({ volume_id: v.volume_id, staging_target_path: path.join(kub, 'same-2', v.volume_id), volume_capability: mountCap(), volume_context: v.volume_context })
      }
      const pub = (v: typeof a) => () => n.NodePublishVolume({ volume_id: v.volume_id, staging_target_path: path.join(kub, 'same-2', v.volume_id), target_path: target, volume_capability: mountCap(), volume_context: v.volume_context }, CALL_DEADLINE_MS)
      const calls = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? pub(a) : pub(b)))
      const { outs } = await storm(calls)
      const codes = new Map<string, number>()
      outs.forEach((o) => tally(codes, o))
      tt.comment(`codes: ${fmt(codes)}`)
      const bad = outs.filter((o) => ![OK, EXISTS, ABORTED].includes(o.code)).map((o) => `${codeName(o.code)} ${o.message}`)
      tt.same(bad.slice(0, 5), [], 'every answer is OK, ALREADY_EXISTS (a different volume is there) or ABORTED')
      const at = mountsAt(target)
      tt.equal(at.length, 1, `exactly one mount at the target (${at.join(', ')})`)
      const winner = at[0] === a.volume_id ? 0 : 1
      const loserOk = outs.filter((o, i) => i % 2 !== winner && o.code === OK).length
      tt.equal(loserOk, 0, 'the volume that is not mounted there never got OK')
      for (const v of [a, b]) {
        tt.equal((await settle(() => n.NodeUnpublishVolume({ volume_id: v.volume_id, target_path: target }, CALL_DEADLINE_MS))).code, v.volume_id === at[0] ? OK : (existsSync(target) ? PRECONDITION : OK), `unpublish ${v === a ? 'a' : 'b'}`)
      }
      for (const v of [a, b]) {
        await n.NodeUnstageVolume({ volume_id: v.volume_id, staging_target_path: path.join(kub, 'same-2', v.volume_id) })
        await settle(() => c.DeleteVolume({ volume_id: v.volume_id }, CALL_DEADLINE_MS))
      }
      tt.same(mountsUnder(path.join(kub, 'same-2')), [], 'no mount is left')
    })

    // ------------------------------------------------------------------ single writer
    await t.test('SINGLE_NODE_SINGLE_WRITER: 20 targets at once, exactly one publication', async (tt) => {
      const v = await createVolume('same-3', 'SINGLE_NODE_SINGLE_WRITER')
      const staging = path.join(kub, 'same-3/staging')
      mkdirSync(staging, { recursive: true })
      await n.NodeStageVolume({ volume_id: v.volume_id, staging_target_path: staging, volume_capability: mountCap('SINGLE_NODE_SINGLE_WRITER'), volume_context: v.volume_context })
      const targets = Array.from({ length: 20 }, (_, i) => path.join(kub, `same-3/pod-${i}/mount`))
      for (const tg of targets) mkdirSync(path.dirname(tg), { recursive: true })
      const { outs } = await storm(targets.map((tg) => () => n.NodePublishVolume({ volume_id: v.volume_id, staging_target_path: staging, target_path: tg, volume_capability: mountCap('SINGLE_NODE_SINGLE_WRITER'), volume_context: v.volume_context }, CALL_DEADLINE_MS)))
      const codes = new Map<string, number>()
      outs.forEach((o) => tally(codes, o))
      tt.comment(`codes: ${fmt(codes)}`)
      tt.same(outs.filter((o) => ![OK, PRECONDITION, ABORTED].includes(o.code)).map((o) => `${codeName(o.code)} ${o.message}`).slice(0, 5), [], 'every answer is OK, FAILED_PRECONDITION or ABORTED')
      const published = targets.filter((tg) => mountsAt(tg).length > 0)
      tt.equal(outs.filter((o) => o.code === OK).length, 1, 'exactly one publish answered OK')
      tt.equal(published.length, 1, `exactly one target is mounted (${published.length})`)
      tt.same(targets.filter((tg, i) => outs[i]!.code !== OK && existsSync(tg)), [], 'refused publishes left no target directory behind')
      for (const tg of targets) await settle(() => n.NodeUnpublishVolume({ volume_id: v.volume_id, target_path: tg }, CALL_DEADLINE_MS))
      await n.NodeUnstageVolume({ volume_id: v.volume_id, staging_target_path: staging })
      tt.same(mountsUnder(path.join(kub, 'same-3')), [], 'no mount is left')
      await settle(() => c.DeleteVolume({ volume_id: v.volume_id }, CALL_DEADLINE_MS))
    })

    // ------------------------------------------------------------------ controller: one name
    await t.test('50 concurrent CreateVolume of one name, then 50 DeleteVolume, then both mixed', async (tt) => {
      const create = () => c.CreateVolume({ name: 'same-4', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(8 << 20) } }, CALL_DEADLINE_MS)
      const { outs, ms } = await storm(Array.from({ length: 50 }, () => create))
      const codes = new Map<string, number>()
      outs.forEach((o) => tally(codes, o))
      tt.comment(`create x50: ${fmt(codes)} in ${ms} ms`)
      tt.same(outs.filter((o) => o.code !== OK && o.code !== ABORTED).map((o) => `${codeName(o.code)} ${o.message}`).slice(0, 5), [], 'every CreateVolume answered OK or ABORTED')
      const ids = new Set(outs.filter((o) => o.code === OK).map((o) => o.res.volume.volume_id as string))
      const again = await settle(create)
      tt.equal(again.code, OK, 'a retried CreateVolume succeeds')
      ids.add(again.res?.volume?.volume_id)
      tt.equal(ids.size, 1, 'every OK returned the same volume')
      const id = [...ids][0]!
      tt.equal((await c.ListVolumes({})).entries.filter((e: any) => e.volume.volume_id === id).length, 1, 'ListVolumes shows it once')
      tt.ok(existsSync(path.join(data, 'volumes', id)), 'its directory exists')

      const del = () => c.DeleteVolume({ volume_id: id }, CALL_DEADLINE_MS)
      const d = await storm(Array.from({ length: 50 }, () => del))
      const dcodes = new Map<string, number>()
      d.outs.forEach((o) => tally(dcodes, o))
      tt.comment(`delete x50: ${fmt(dcodes)} in ${d.ms} ms`)
      tt.same(d.outs.filter((o) => o.code !== OK && o.code !== ABORTED).map((o) => `${codeName(o.code)} ${o.message}`).slice(0, 5), [], 'every DeleteVolume answered OK or ABORTED')
      tt.equal((await settle(del)).code, OK, 'a retried DeleteVolume succeeds')
      tt.notOk(existsSync(path.join(data, 'volumes', id)), 'the directory is gone')
      tt.equal((await c.ListVolumes({})).entries.filter((e: any) => e.volume.volume_id === id).length, 0, 'ListVolumes no longer shows it')

      // Creates and deletes of the same name interleaved: whatever wins, store and disk agree.
      const mixed = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? create : del))
      const m = await storm(mixed)
      const mcodes = new Map<string, number>()
      m.outs.forEach((o) => tally(mcodes, o))
      tt.comment(`create+delete x60: ${fmt(mcodes)} in ${m.ms} ms`)
      tt.same(m.outs.filter((o) => ![OK, ABORTED].includes(o.code)).map((o) => `${codeName(o.code)} ${o.message}`).slice(0, 5), [], 'every answer is OK or ABORTED')
      const listed = (await c.ListVolumes({})).entries.some((e: any) => e.volume.volume_id === id)
      // The node may still be acting on the last decision; give it a moment, then compare.
      await new Promise((res) => setTimeout(res, 500))
      tt.equal(existsSync(path.join(data, 'volumes', id)), listed, `store and disk agree (listed: ${listed})`)
      tt.equal((await settle(del)).code, OK, 'and it can be deleted at the end')
    })

    // ------------------------------------------------------------------ COs that retry
    await t.test('20 retrying callers creating and deleting one name: every call settles OK, store and disk agree', async (tt) => {
      // Like 20 external-provisioner replicas fighting over one PVC: each retries ABORTED with
      // backoff, so creates and deletes really interleave (create after a delete was requested,
      // delete while the node is still creating, ...).
      const name = 'same-5'
      const id = { current: '' }
      const codes = new Map<string, number>()
      const bad: string[] = []
      const t0 = Date.now()
      await Promise.all(Array.from({ length: 20 }, async (_, w) => {
        for (let i = 0; i < 5; i++) {
          const create = r.chance(0.5)
          const o = await settle(() => (create
            ? c.CreateVolume({ name, volume_capabilities: [mountCap()] }, CALL_DEADLINE_MS)
            : c.DeleteVolume({ volume_id: id.current || `v-${'0'.repeat(32)}` }, CALL_DEADLINE_MS)), 200)
          tally(codes, o)
          if (o.code === OK && create) id.current = o.res.volume.volume_id
          if (o.code !== OK) bad.push(`caller ${w} ${create ? 'create' : 'delete'}: ${codeName(o.code)} ${o.message}`)
        }
      }))
      tt.comment(`100 settled calls in ${Date.now() - t0} ms: ${fmt(codes)}`)
      tt.same(bad.slice(0, 5), [], 'every call settled OK after retrying ABORTED')
      if (id.current) {
        const listed = (await c.ListVolumes({})).entries.some((e: any) => e.volume.volume_id === id.current)
        tt.equal(existsSync(path.join(data, 'volumes', id.current)), listed, `store and disk agree (listed: ${listed})`)
        tt.equal((await settle(() => c.DeleteVolume({ volume_id: id.current }, CALL_DEADLINE_MS))).code, OK, 'it can be deleted at the end')
        tt.notOk(existsSync(path.join(data, 'volumes', id.current)), 'and its directory is gone')
      }
    })

    // ------------------------------------------------------------------ many volumes at once
    await t.test('30 volumes through full lifecycles at once', async (tt) => {
      const N = 30
      const t0 = Date.now()
      const codes = new Map<string, number>()
      const failures: string[] = []
      let stopPaging = false
      // A reader paging through ListVolumes and asking GetCapacity meanwhile.
      const reader = (async () => {
        const bad: string[] = []
        let pages = 0
        while (!stopPaging) {
          let token = ''
          do {
            const o = await outcome(c.ListVolumes({ max_entries: 3, starting_token: token }, CALL_DEADLINE_MS))
            pages++
            if (o.code !== OK && o.code !== ABORTED) bad.push(`ListVolumes: ${codeName(o.code)} ${o.message}`)
            token = o.code === OK ? o.res.next_token : ''
          } while (token !== '' && !stopPaging)
          const g = await outcome(c.GetCapacity({ volume_capabilities: [mountCap()] }, CALL_DEADLINE_MS))
          if (g.code !== OK) bad.push(`GetCapacity: ${codeName(g.code)} ${g.message}`)
        }
        return { bad, pages }
      })()
      async function step(i: number, what: string, f: () => Promise<unknown>): Promise<any> {
        const o = await settle(f)
        tally(codes, o)
        if (o.code !== OK) throw new Error(`volume ${i} ${what}: ${codeName(o.code)} ${o.message}`)
        return o.res
      }
      const lifecycles = Array.from({ length: N }, async (_, i) => {
        const name = `many-${i}`
        const staging = path.join(kub, `many/${i}/staging`)
        const target = path.join(kub, `many/${i}/pod/mount`)
        mkdirSync(staging, { recursive: true })
        mkdirSync(path.dirname(target), { recursive: true })
        try {
          const vol = (await step(i, 'create', () => c.CreateVolume({ name, volume_capabilities: [mountCap()] }, CALL_DEADLINE_MS))).volume
          const ctx = vol.volume_context
          await step(i, 'stage', () => n.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: mountCap(), volume_context: ctx }, CALL_DEADLINE_MS))
          await step(i, 'publish', () => n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), volume_context: ctx }, CALL_DEADLINE_MS))
          writeFileSync(path.join(target, 'id'), name)
          if (readFileSync(path.join(data, 'volumes', vol.volume_id, 'id'), 'utf8') !== name) throw new Error(`volume ${i}: the write did not land in its own directory`)
          // A delete while it is published must be refused and change nothing.
          const early = await settle(() => c.DeleteVolume({ volume_id: vol.volume_id }, CALL_DEADLINE_MS))
          tally(codes, early)
          if (early.code !== PRECONDITION) throw new Error(`volume ${i} delete while published: ${codeName(early.code)} ${early.message}`)
          await step(i, 'unpublish', () => n.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: target }, CALL_DEADLINE_MS))
          await step(i, 'unstage', () => n.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging }, CALL_DEADLINE_MS))
          await step(i, 'delete', () => c.DeleteVolume({ volume_id: vol.volume_id }, CALL_DEADLINE_MS))
        } catch (e) {
          failures.push((e as Error).message)
        }
      })
      await Promise.all(lifecycles)
      stopPaging = true
      const rd = await reader
      const ms = Date.now() - t0
      tt.comment(`${N} lifecycles in ${ms} ms; codes ${fmt(codes)}; reader paged ${rd.pages} times`)
      tt.same(failures.slice(0, 10), [], `every lifecycle completed (${failures.length} failed)`)
      tt.same(rd.bad.slice(0, 5), [], 'ListVolumes/GetCapacity meanwhile answered OK or ABORTED')
      tt.ok(ms < 120_000, `no deadlock: all done in ${ms} ms`)
      tt.same(mountsUnder(path.join(kub, 'many')), [], 'no mount is left')
      tt.same(readdirSync(path.join(data, 'volumes')), [], 'no volume directory is left')
    })

    // ------------------------------------------------------------------ the store afterwards
    await t.test('the store is intact', async (tt) => {
      // The node reports its capacity about a second after the last change; let that write end
      // so its temp file (a write in flight, not one left behind) is gone.
      await new Promise((r) => setTimeout(r, 1500))
      const problems: string[] = []
      for (const coll of ['volumes', 'nodes']) {
        const d = path.join(storeDir, coll)
        for (const f of readdirSync(d)) {
          if (f.endsWith('.tmp')) problems.push(`${coll}/${f}: a temp file was left behind`)
          else if (f.endsWith('.json')) {
            try {
              JSON.parse(readFileSync(path.join(d, f), 'utf8'))
            } catch (e) {
              problems.push(`${coll}/${f}: ${(e as Error).message}`)
            }
          }
        }
      }
      tt.same(problems, [], 'every document parses and no temp file is left')
      const vols = readdirSync(path.join(storeDir, 'volumes')).filter((f) => f.endsWith('.json'))
      tt.same(vols, [], 'no volume document is left after every volume was deleted')
      tt.same((await c.ListVolumes({})).entries, [], 'ListVolumes is empty')
      tt.same(mountsUnder(dir), [], 'no mount is left anywhere in the test folder')
      tt.equal(node.child.exitCode, null, 'the node plugin is still running')
      tt.equal(ctl.child.exitCode, null, 'the controller is still running')
    })
  })
}
