// The crash harness (test/crash-inject.test.ts) on a stock kernel, with a small count: every
// kill -9 costs a Node start, about half a minute under TCG. TSCSI_VM_CRASH_KILLS and
// CRASH_SEED (read from /out/plan by scripts/vm/guest.sh) change it.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { listLoopDevices, loopDetach, parseBackingFile } from '../../native/index.js'
import { PROJECT, kernelRelease } from '../helpers/vm-rig.js'
import type { Proc } from '../helpers/driver.js'

const seed = Number(process.env.CRASH_SEED ?? 20260701)
const kills = Number(process.env.TSCSI_VM_CRASH_KILLS ?? 6)
const dir = '/scratch/plain/crash'

t.test(`${kills} kills -9 on ${kernelRelease()} (seed ${seed})`, async (t) => {
  // The harness runs the build under CRASH_DIST_ROOT; the suite itself runs from dist/vm/.
  process.env.CRASH_DIST_ROOT = PROJECT
  const { Cluster } = await import('../helpers/crash/cluster.js')
  const { runCrash } = await import('../helpers/crash/harness.js')
  mkdirSync(dir, { recursive: true })
  const started: Proc[] = []
  const cluster = new Cluster(dir, started)
  t.teardown(async () => {
    cluster.close()
    for (const p of started) p.child.kill('SIGKILL')
    await Promise.all(started.map((p) => p.exited))
    for (const l of listLoopDevices()) if (parseBackingFile(l.backingFile).path.startsWith(dir + '/')) loopDetach(l.device)
  })
  const r = await runCrash({ seed, kills, dir, cluster, progress: (line) => t.comment(line) })
  t.comment(`${r.kills} kills (node ${r.killsBy.node}, controller ${r.killsBy.controller}) in ${r.rounds} rounds, ${r.ops} ops, ${r.rpcs} RPCs, ${(r.ms / 1000).toFixed(0)} s`)
  if (r.violations.length > 0) {
    const v = r.violations[0]!
    t.comment(`--- op log (last lines) ---\n${r.tail}`)
    t.fail(`round ${v.round}: ${v.kind}:\n${v.messages.join('\n')}`)
  }
  t.equal(r.violations.length, 0, 'no invariant violations')
  t.ok(r.kills >= kills, `${r.kills} kills (asked for ${kills})`)
})
