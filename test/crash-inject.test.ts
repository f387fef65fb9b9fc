// Crash injection (issue 7, item 2): a seeded stream of CO operations against the real controller
// and node plugin, one of them killed with SIGKILL at a random moment of every round and
// restarted, every interrupted call repeated until it converges, and the invariants checked
// after each round (test/helpers/crash/invariants.ts lists them). CRASH_SEED replays a run,
// CRASH_KILLS sets its length (scripts/crash-long.sh runs a long one), CRASH_LOG keeps the
// whole op log.
import t from 'tap'
import { listLoopDevices, loopDetach, parseBackingFile } from '../native/index.js'
import { Cluster } from './helpers/crash/cluster.js'
import { runCrash } from './helpers/crash/harness.js'
import { testRig } from './helpers/driver.js'

const seed = Number(process.env.CRASH_SEED ?? 20260701)
const kills = Number(process.env.CRASH_KILLS ?? 200)

if (process.getuid?.() !== 0) {
  t.test('crash injection', { skip: 'it mounts filesystems and attaches loop devices: it needs root' }, () => undefined)
} else {
  // About 0.8 s a kill on a 2-core machine, with room for a loaded one.
  t.setTimeout(Math.max(300_000, kills * 3_000))
  t.test(`${kills} kills -9 of the controller and node plugin (seed ${seed})`, async (t) => {
    const rig = testRig(t)
    const cluster = new Cluster(rig.dir, rig.procs)
    // After the rig's teardown has unmounted everything: a block volume's loop device is not
    // autoclear and would outlive a run cut short.
    t.teardown(() => {
      cluster.close()
      for (const l of listLoopDevices()) if (parseBackingFile(l.backingFile).path.startsWith(rig.dir + '/')) loopDetach(l.device)
    })
    const r = await runCrash({
      seed, kills, dir: rig.dir, cluster, logFile: process.env.CRASH_LOG,
      progress: (line) => t.comment(line),
    })
    const summary = `seed ${seed}: ${r.kills} kills (node ${r.killsBy.node}, controller ${r.killsBy.controller}) in ${r.rounds} rounds, ` +
      `${r.ops} ops, ${r.rpcs} RPCs, ${r.retries} retries, ${r.violations.length} invariant violations, ${(r.ms / 1000).toFixed(1)} s ` +
      `(mean restart ${r.meanStartMs} ms)`
    t.comment(summary)
    t.comment(`in flight at the kills: ${JSON.stringify(r.atKill)}`)
    t.comment(`non-OK answers (retried): ${JSON.stringify(r.codes)}`)
    if (r.violations.length > 0) {
      const v = r.violations[0]!
      t.comment(`replay: CRASH_SEED=${seed} CRASH_KILLS=${kills} npx tap test/crash-inject.test.ts`)
      t.comment(`--- op log (last lines) ---\n${r.tail}`)
      t.comment(`--- node plugin log ---\n${r.logs.node}`)
      t.comment(`--- controller log ---\n${r.logs.controller}`)
      t.fail(`round ${v.round}: ${v.kind}:\n${v.messages.join('\n')}`)
    }
    t.equal(r.violations.length, 0, 'no invariant violations')
    t.ok(r.kills >= kills, `${r.kills} kills (asked for ${kills})`)
  })
}
