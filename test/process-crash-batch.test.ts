// kill -9 of the controller in the middle of ledger group commits (controller/claims.ts): many
// CreateVolumes at once, so claims are decided and written together, and the process is killed
// once some of them have been answered. Acknowledged means durable: every volume the CO was told
// about is in the store with its claim, and after the CO's retries every name is one volume whose
// claim matches it, no two share a project id, and deleting them all leaves an empty ledger.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { client, crashRandom, kill9, mountCap, nodeSeen, start, testRig } from './helpers/driver.js'

const MiB = 1 << 20
const PER_ROUND = 32
const ROUNDS = 4

interface Claim { projectId?: number }
interface Ledger { version: number; claims: Record<string, Claim>; projectIds?: Record<string, number> }

/** The newest version of every node's ledger in the local store (`node.<id>.v<n>.json`). */
function ledgers(dir: string): Map<string, Ledger> {
  const out = new Map<string, Ledger>()
  const root = path.join(dir, 'state/store/ledger')
  for (const f of readdirSync(root)) {
    const m = /^(node\..+)\.v(\d+)\.json$/.exec(f)
    if (!m) continue
    const version = Number(m[2])
    if ((out.get(m[1]!)?.version ?? -1) > version) continue
    const doc = JSON.parse(readFileSync(path.join(root, f), 'utf8'))
    out.set(m[1]!, { version, claims: doc.claims ?? {}, projectIds: doc.projectIds })
  }
  return out
}

/** Every volume spec in the local store, by id. */
function specs(dir: string): Map<string, { name: string; projectId?: number }> {
  const root = path.join(dir, 'state/store/volumes')
  const out = new Map<string, { name: string; projectId?: number }>()
  for (const f of readdirSync(root)) {
    const m = /^(.+)\.spec\.json$/.exec(f)
    if (m) out.set(m[1]!, JSON.parse(readFileSync(path.join(root, f), 'utf8')))
  }
  return out
}

if (process.getuid?.() !== 0) {
  t.skip('crash tests mount filesystems and need root', () => {})
} else {
  t.setTimeout(360_000)
  t.test(`controller killed mid group commit, ${ROUNDS} rounds of ${PER_ROUND} concurrent creates (seeded): nothing acknowledged is lost`, async (t) => {
    const rig = testRig(t)
    const dir = rig.dir
    const node = await start('node', dir)
    rig.procs.push(node)
    const rand = crashRandom(t, 20261203)
    const req = (name: string) => ({ name, volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) } })
    const names: string[] = []
    let unansweredAtKills = 0
    for (let round = 0; round < ROUNDS; round++) {
      const ctl = await start('controller', dir)
      rig.procs.push(ctl)
      const c = client('Controller', ctl.socket)
      await nodeSeen(c)
      const mine = Array.from({ length: PER_ROUND }, (_, i) => `pvc-batch-${round}-${i}`)
      names.push(...mine)
      // Kill once this many have been answered: the rest are in a commit or queued behind one.
      const killAfter = 1 + Math.floor(rand() * (PER_ROUND / 2))
      const acked: string[] = []
      let reached!: () => void
      const enough = new Promise<void>((r) => (reached = r))
      const calls = mine.map((name) => c.CreateVolume(req(name), 60_000).then((r) => {
        t.equal(r.volume.capacity_bytes, String(MiB))
        acked.push(name)
        if (acked.length === killAfter) reached()
      }, () => undefined))
      await Promise.race([enough, Promise.all(calls)])
      await kill9(ctl)
      const answered = [...acked]
      await Promise.all(calls)
      c.close()
      unansweredAtKills += PER_ROUND - answered.length
      t.comment(`round ${round}: killed after ${answered.length} of ${PER_ROUND} creates were answered`)
      // Nothing runs on the controller's side now: what the store holds is what survived.
      const vols = specs(dir)
      const claims = new Map([...ledgers(dir).values()].flatMap((l) => Object.entries(l.claims)))
      for (const name of answered) {
        const v = [...vols].find(([, s]) => s.name === name)
        t.ok(v, `${name} was acknowledged, so its volume is recorded`)
        if (v) t.same(claims.get(v[0])?.projectId, v[1].projectId, `${name}'s claim is recorded with its project id`)
      }
    }
    t.ok(unansweredAtKills > 0, `the kills found ${unansweredAtKills} creates unanswered`)

    const ctl = await start('controller', dir)
    rig.procs.push(ctl)
    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    await nodeSeen(c)
    // The CO repeats every create it was not answered (and may repeat answered ones): all at once.
    await Promise.all(names.map((name) => c.CreateVolume(req(name), 60_000)))
    const list = await c.ListVolumes({})
    t.equal(list.entries.length, names.length, 'one volume per name')
    t.equal(readdirSync(path.join(dir, 'data/volumes')).length, names.length, 'one directory per volume')
    const vols = specs(dir)
    const ids = [...vols.values()].map((s) => s.projectId)
    t.equal(ids.filter((id) => id !== undefined).length, names.length, 'every dir volume has a project id')
    t.equal(new Set(ids).size, names.length, 'no two volumes share a project id')
    const [ledger, ...others] = [...ledgers(dir).values()]
    t.equal(others.length, 0, 'one node, one ledger')
    t.same(Object.keys(ledger!.claims).sort(), [...vols.keys()].sort(), 'the ledger claims exactly the volumes: none lost, no orphan left by a retry')
    for (const [id, s] of vols) if (ledger!.claims[id]?.projectId !== s.projectId) t.fail(`volume ${id}: claim's project id ${ledger!.claims[id]?.projectId} is not its own ${s.projectId}`)
    t.ok((ledger!.projectIds?.['default'] ?? 0) >= Math.max(...(ids as number[])), 'the high mark covers every id handed out')
    // A version is one write: claims written one by one would need one per volume at least.
    t.ok(ledger!.version < names.length, `${names.length} claims took ${ledger!.version} ledger writes (group commit)`)

    await Promise.all([...vols.keys()].map((id) => c.DeleteVolume({ volume_id: id }, 60_000)))
    t.same(Object.keys([...ledgers(dir).values()][0]!.claims), [], 'every release landed: the ledger claims nothing')
    t.same(readdirSync(path.join(dir, 'data/volumes')), [], 'no volume directory left')
  })
}
