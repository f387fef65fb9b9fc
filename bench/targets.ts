// The targets of issue 17, judged from one run's results: each row is measured / target /
// PASS or MISS, and a row whose phase did not run says so instead of passing or failing. The
// sizes in a row's name are the ones measured (a quick run uses smaller stores and fewer mounts
// than the issue's 10,000 volumes and 5,000 mounts).
import { med, pairedRatio, type Results, type Target } from './results.js'
import { fmt, fmtRatio } from './stats.js'

const notRun = (name: string, goal: string, phase: string): Target => ({ name, goal, measured: `not measured (phase ${phase} did not run)`, pass: undefined })

interface AtSize {
  size: number
  ms: number
}

/** A p50 at the large size against the same p50 at the small one: at most 1.2× (no growth with scale). */
function growth(what: string, of: string, small: AtSize | undefined, large: AtSize | undefined, issueSize: number, phase: string): Target {
  const name = `${what} with ${(large?.size ?? issueSize).toLocaleString('en')} ${of}`
  const goal = `≤ 1.2× its value with ${small?.size ?? 10}`
  if (!small || !large) return notRun(name, goal, phase)
  const ratio = large.ms / small.ms
  return { name, goal, measured: `${fmt(large.ms)} ms = ${fmtRatio(ratio)} (${fmt(small.ms)} ms with ${small.size})`, pass: ratio <= 1.2 }
}

export function judge(r: Results): Target[] {
  const t: Target[] = []
  const c1 = r.lifecycle?.find((l) => l.concurrency === 1)
  const c16 = r.lifecycle?.find((l) => l.concurrency === 16)
  const floor = r.floor

  {
    const name = 'Lifecycle time at concurrency 1 (p50)'
    if (!c1 || !floor) t.push(notRun(name, '≤ 1.5× the lifecycle floor', 'lifecycle'))
    else {
      const p50 = med(c1.rounds, (x) => x.tscsi.steps['lifecycle']!.p50)
      const goal = 1.5 * floor.lifecycle
      t.push({ name, goal: `≤ 1.5× the lifecycle floor = ${fmt(goal)} ms`, measured: `${fmt(p50)} ms (${fmtRatio(p50 / floor.lifecycle)} the floor of ${fmt(floor.lifecycle)} ms)`, pass: p50 <= goal })
    }
  }
  {
    const name = 'Lifecycle throughput at concurrency 16'
    if (!c16) t.push(notRun(name, '≥ 10× hostpathplugin', 'lifecycle'))
    else if (c16.rounds.every((x) => !x.hostpath)) {
      t.push({ name, goal: '≥ 10× hostpathplugin', measured: `skipped: no hostpathplugin to compare with (tscsi ${fmt(med(c16.rounds, (x) => x.tscsi.perSecond))}/s)`, pass: undefined })
    } else {
      const ratio = pairedRatio(c16.rounds, (x) => x.tscsi.perSecond, (x) => (x.hostpath?.perSecond ?? NaN))
      const measured = `${fmtRatio(ratio.median)} hostpathplugin (paired rounds ${fmt(ratio.min)}–${fmt(ratio.max)}; ${fmt(med(c16.rounds, (x) => x.tscsi.perSecond))}/s)`
      t.push({ name, goal: '≥ 10× hostpathplugin', measured, pass: ratio.median >= 10 })
    }
  }
  {
    const name = 'NodePublishVolume p50, client side'
    if (!c1) t.push(notRun(name, '≤ 0.5 ms', 'lifecycle'))
    else {
      const p50 = med(c1.rounds, (x) => x.tscsi.steps['NodePublishVolume']!.p50)
      const server = med(c1.rounds, (x) => x.tscsi.serverP50['NodePublishVolume'] ?? NaN)
      const rtt = floor ? `; rtt floor ${fmt(floor.rtt.p50)} ms` : ''
      t.push({ name, goal: '≤ 0.5 ms', measured: `${fmt(p50)} ms at concurrency 1 (handler ${fmt(server)} ms${rtt})`, pass: p50 <= 0.5 })
    }
  }
  const small = r.store?.[0]
  const large = r.store && r.store.length >= 2 ? r.store[r.store.length - 1] : undefined
  t.push(growth('CreateVolume p50', 'volumes in the store', small && { size: small.volumes, ms: small.create.p50 }, large && { size: large.volumes, ms: large.create.p50 }, 10_000, 'store'))
  {
    const name = `ListVolumes, full listing of ${(large?.volumes ?? 10_000).toLocaleString('en')} volumes (p50)`
    if (!large) t.push(notRun(name, '≤ 50 ms', 'store'))
    else t.push({ name, goal: '≤ 50 ms', measured: `${fmt(large.listAll.p50)} ms client side, decoded (${large.listAll.entries} entries; received undecoded: ${fmt(large.listRaw.p50)} ms)`, pass: large.listAll.p50 <= 50 })
  }
  {
    const idle = r.memory?.samples[0]?.rss['tscsi-node']
    if (idle === undefined) t.push(notRun('Node plugin idle RSS', '≤ 80 MB', 'memory'))
    else t.push({ name: 'Node plugin idle RSS', goal: '≤ 80 MB', measured: `${fmt(idle)} MB`, pass: idle <= 80 })
  }
  const lo = r.scale?.[0]
  const hi = r.scale && r.scale.length >= 2 ? r.scale[r.scale.length - 1] : undefined
  t.push(growth('Publish p50', 'mounts present', lo && { size: lo.mounts, ms: lo.tscsi.publishP50 }, hi && { size: hi.mounts, ms: hi.tscsi.publishP50 }, 5_000, 'scale'))
  return t
}
