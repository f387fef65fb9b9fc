// The short soak (issue 7, item 6): the lifecycle loop of scripts/soak.sh with fewer volumes, and
// the same checks: every lifecycle succeeds, nothing is left listed or on disk, the driver's open
// fds, mounts and loop devices come back exactly to the baseline, and RSS stays within the
// documented tolerance (test/helpers/soak.ts RSS_TOLERANCE).
import t from 'tap'
import { existsSync } from 'node:fs'
import { testRig } from './helpers/driver.js'
import { cleanUnder, formatReport, runSoak, violations } from './helpers/soak.js'

const skip = process.getuid?.() !== 0 ? 'needs root (mounts, loop devices)' : !existsSync('/dev/loop-control') ? 'no /dev/loop-control' : false

t.test('short soak: 200 volumes, 4 targets each, resources back to baseline', { skip }, async (t) => {
  t.setTimeout(300_000)
  const rig = testRig(t)
  // Block volumes' loop devices are not autoclear; a failed run must not leave them attached.
  t.teardown(() => cleanUnder(rig.dir))
  const report = await runSoak({ dir: rig.dir, volumes: 200, minSeconds: 0, holdMs: 100, concurrency: 16, targets: 4, warmup: 20, onStart: (p) => rig.procs.push(p) })
  t.comment(formatReport(report))
  t.equal(report.failures, 0, `every lifecycle succeeded${report.errors.length ? `: ${report.errors.join(' | ')}` : ''}`)
  t.equal(report.byKind.dir + report.byKind.image + report.byKind.block, 200, 'all three kinds went through')
  t.ok(report.byKind.image > 0 && report.byKind.block > 0, 'images and block volumes among them')
  t.equal(report.leftoverVolumes, 0, 'no volume is left listed')
  t.same(report.leftoverFiles, [], 'nothing left in the data root or the CO folders')
  for (const p of ['controller', 'node'] as const) t.equal(report.end.fds[p], report.baseline.fds[p], `${p}: open fds back to ${report.baseline.fds[p]}`)
  t.equal(report.end.mounts, report.baseline.mounts, `mounts back to ${report.baseline.mounts}`)
  t.equal(report.end.loops, report.baseline.loops, `loop devices back to ${report.baseline.loops}`)
  t.same(violations(report).filter((v) => /RSS/.test(v)), [], 'RSS within the tolerance')
})
