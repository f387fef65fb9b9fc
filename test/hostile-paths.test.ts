// Hostile ids, names, parameters and paths against the REAL controller and node plugin (root).
//
// A table of cases covers every id, name, map and path field of every RPC of both services. Each
// case must be answered with the code the CSI spec names (INVALID_ARGUMENT naming the field for a
// malformed value, NOT_FOUND for an id that is not ours, FAILED_PRECONDITION where the spec says),
// and after each case nothing outside the driver's data root or the given target may have been
// created, mounted over, chmodded or removed: a canary tree sits outside the roots exactly where
// the hostile paths point (symlinks, `..`, /proc/self/root, relative paths from the plugin's
// working directory), and is compared byte for byte after every case and after the suite. The
// mount table must gain nothing outside the test folder and nothing under the canary.
// Every assertion is a plain one: a wrong answer or a touched canary turns the run red.
import t from 'tap'
import { mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { detachUnder, diffSnapshots, isUnder, mountPoints, restoreCanary, snapshotTree } from './helpers/canary.js'
import { codeName, outcome } from './helpers/rpc-outcome.js'
import { hostileEnv, OK, INVALID, DEADLINE, INTERNAL, UNKNOWN, type Case } from './helpers/hostile/env.js'
import { nodeCases } from './helpers/hostile/cases-node.js'
import { controllerCases } from './helpers/hostile/cases-controller.js'
import { isRoot } from './helpers/rpc-outcome.js'

if (!isRoot()) {
  t.test('hostile ids, names, parameters and paths', { skip: 'needs root: starts the real driver and mounts filesystems' }, () => {})
} else {
  t.test('hostile ids, names, parameters and paths', async (t) => {
    const e = await hostileEnv(t)
    const { dir, data, kub, canary, original, baseMounts, fsMounts, ctl, node, c, n, A, B, stagingA, pubA, cap, publishReq, ourMountsOutside } = e
    let baseline = e.original
    const cases: Case[] = []
    const add = (c0: Case) => cases.push(c0)
    await nodeCases(e, add)
    await controllerCases(e, add)

    // ---------------------------------------------------------------- run it
    const touched: string[] = []
    const badCodes: { label: string; text: string }[] = []
    let answered = 0
    for (const cs of cases) {
      const before = new Set(mountPoints())
      const o = await outcome(cs.call())
      answered++
      if (o.code === UNKNOWN || o.code === INTERNAL || o.code === DEADLINE || o.code === -1) badCodes.push({ label: cs.label, text: `${cs.label}: ${codeName(o.code)} ${o.message.slice(0, 160)}` })
      t.ok(cs.expect.includes(o.code), `${cs.label} -> ${codeName(o.code)} (want ${cs.expect.map(codeName).join('|')})${o.message ? `: ${o.message.slice(0, 200)}` : ''}`)
      if (o.code === INVALID && cs.field) t.match(o.message, cs.field, `${cs.label}: the message names ${cs.field}`)
      // Side effects: the canary, the mount table, and the case's own invariants.
      const problems: string[] = []
      const now = mountPoints()
      for (const mp of ourMountsOutside()) if (!before.has(mp)) problems.push(`new mount outside the test folder: ${mp}`)
      for (const mp of now) if (isUnder(mp, canary)) problems.push(`mount on the canary: ${mp}`)
      const diff = diffSnapshots(baseline, snapshotTree(canary))
      problems.push(...diff.map((d) => `canary changed: ${d}`))
      if (o.code === OK && cs.undo) {
        try {
          await cs.undo(o.res)
        } catch (e) {
          problems.push(String((e as Error).message))
        }
      }
      if (cs.check) problems.push(...cs.check(o))
      // Anything the case mounted and did not take down again is a leak (and would skew later cases).
      const leaked = [...mountPoints().filter((mp) => isUnder(mp, dir)), ...ourMountsOutside()].filter((mp) => !before.has(mp))
      if (leaked.length > 0) {
        problems.push(`mounts left by the case: ${leaked.join(', ')}`)
        for (const mp of leaked.reverse()) detachUnder(mp)
      }
      if (node.child.exitCode !== null || ctl.child.exitCode !== null) problems.push('a driver process exited')
      // Keep A staged and published for the next cases, whatever this one did.
      for (const [p, mk] of [[stagingA, () => n.NodeStageVolume({ volume_id: A.volume_id, staging_target_path: stagingA, volume_capability: cap, volume_context: A.volume_context })],
        [pubA, () => n.NodePublishVolume(publishReq({ target_path: pubA }))]] as const) {
        if (!mountPoints().includes(p)) {
          mkdirSync(p === stagingA ? p : path.dirname(p), { recursive: true })
          const r = await outcome(mk())
          problems.push(`repaired ${p} (re-mounted: ${codeName(r.code)})`)
        }
      }
      t.same(problems, [], `${cs.label}: no side effects outside the data root and the given path`)
      if (diff.length > 0 || now.some((mp) => isUnder(mp, canary))) {
        touched.push(cs.label)
        restoreCanary(canary)
        baseline = snapshotTree(canary)
      }
      if (node.child.exitCode !== null || ctl.child.exitCode !== null) break
    }
    t.comment(`hostile cases: ${cases.length} (answered ${answered})`)
    t.equal(answered, cases.length, 'every case was answered')
    t.same(badCodes.map((b) => b.text), [], 'no case answered UNKNOWN, INTERNAL or hung')

    // ---------------------------------------------------------------- after the suite
    t.equal(node.child.exitCode, null, 'the node plugin is still running')
    t.equal(ctl.child.exitCode, null, 'the controller is still running')
    // The real volume still works end to end.
    const target = path.join(kub, 'pods/p1/final')
    await n.NodePublishVolume(publishReq({ target_path: target }))
    t.equal(readFileSync(path.join(target, 'a.txt'), 'utf8'), 'volume A\n', 'volume A is intact and publishable')
    await n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: target })
    await n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: pubA })
    await n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: stagingA })
    t.same(mountPoints().filter((mp) => isUnder(mp, dir) && !fsMounts.has(mp)), [], 'no mount of a volume is left in the test folder')
    const outside = ourMountsOutside().filter((mp) => !baseMounts.has(mp))
    t.same(outside, [], 'the mount table gained nothing outside the test folder')
    await c.DeleteVolume({ volume_id: A.volume_id })
    await c.DeleteVolume({ volume_id: B.volume_id })
    const left = (await c.ListVolumes({})).entries.map((e: any) => e.volume.volume_id)
    t.same(left, [], 'every volume a case created was deleted again')
    // The whole canary, byte for byte, against the snapshot taken before the driver started.
    const final = diffSnapshots(original, snapshotTree(canary))
    t.same(final, [], 'the canary tree is byte-for-byte as before the suite')
    if (touched.length > 0) t.comment(`canary touched by ${touched.length} case(s): ${touched.join('; ')}`)
  })
}

