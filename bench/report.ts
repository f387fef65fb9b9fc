// Turns results into the printed tables (Markdown, aligned for a terminal too) and judges the
// targets of the benchmark issue.
import { STEPS } from './lifecycle.js'
import { med, pairedRatio, type LifecycleResult, type Results, type Target } from './results.js'
import { fmt, fmtRatio } from './stats.js'

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |'
  return [line(head), '|' + widths.map((w, i) => (i === 0 ? ' ' + '-'.repeat(w) + ' ' : ' ' + '-'.repeat(w - 1) + ': ')).join('|') + '|', ...rows.map(line)].join('\n')
}

const range = (r: { median: number; min: number; max: number }): string => `${fmtRatio(r.median)} (${fmt(r.min)}–${fmt(r.max)})`

function lifecycleTables(lc: LifecycleResult[]): string {
  const out: string[] = []
  out.push(table(
    ['concurrency', 'tscsi lifecycles/s', 'hostpath lifecycles/s', 'tscsi/hostpath (paired, min–max)', 'CPU ms/lifecycle tscsi', 'CPU ms/lifecycle hostpath', 'other load (cores)'],
    lc.map((l) => [
      String(l.concurrency),
      fmt(med(l.rounds, (r) => r.tscsi.perSecond)),
      fmt(med(l.rounds, (r) => r.hostpath.perSecond)),
      range(pairedRatio(l.rounds, (r) => r.tscsi.perSecond, (r) => r.hostpath.perSecond)),
      fmt(med(l.rounds, (r) => r.tscsi.cpuMsPerLifecycle)),
      fmt(med(l.rounds, (r) => r.hostpath.cpuMsPerLifecycle)),
      fmt(Math.max(...l.rounds.flatMap((r) => [r.tscsi.foreignCores, r.hostpath.foreignCores])), 2),
    ]),
  ))
  for (const l of lc) {
    const errs = l.rounds.reduce((s, r) => s + r.tscsi.errors + r.hostpath.errors, 0)
    out.push('')
    out.push(`Per step at concurrency ${l.concurrency}, ms (client side; medians of ${l.rounds.length} rounds' p50/p99${errs ? `; ${errs} failed lifecycles` : ''}):`)
    out.push('')
    out.push(table(
      ['step', 'tscsi p50', 'tscsi p99', 'tscsi server p50', 'hostpath p50', 'hostpath p99', 'hostpath/tscsi p50'],
      [...STEPS, 'lifecycle'].map((s) => [
        s,
        fmt(med(l.rounds, (r) => r.tscsi.steps[s]!.p50)),
        fmt(med(l.rounds, (r) => r.tscsi.steps[s]!.p99)),
        fmt(med(l.rounds, (r) => r.tscsi.serverP50[s] ?? NaN)),
        fmt(med(l.rounds, (r) => r.hostpath.steps[s]!.p50)),
        fmt(med(l.rounds, (r) => r.hostpath.steps[s]!.p99)),
        fmtRatio(pairedRatio(l.rounds, (r) => r.hostpath.steps[s]!.p50, (r) => r.tscsi.steps[s]!.p50).median),
      ]),
    ))
  }
  return out.join('\n')
}

export function judge(r: Results): Target[] {
  const t: Target[] = []
  for (const l of r.lifecycle ?? []) {
    const ratio = pairedRatio(l.rounds, (x) => x.tscsi.perSecond, (x) => x.hostpath.perSecond)
    t.push({ name: `Lifecycle throughput at concurrency ${l.concurrency}`, goal: '≥ 10× hostpathplugin', measured: range(ratio), pass: ratio.median >= 10 })
  }
  const c1 = r.lifecycle?.find((l) => l.concurrency === 1)
  if (c1) {
    const p50 = med(c1.rounds, (x) => x.tscsi.steps['NodePublishVolume']!.p50)
    const server = med(c1.rounds, (x) => x.tscsi.serverP50['NodePublishVolume'] ?? NaN)
    const floor = r.floor ? `; empty RPC ${fmt(r.floor.tscsi.p50)} ms` : ''
    t.push({ name: 'NodePublishVolume p50 (concurrency 1)', goal: '≤ 0.5 ms', measured: `${fmt(p50)} ms client side (handler ${fmt(server)} ms${floor})`, pass: p50 <= 0.5 })
    const ratio = pairedRatio(c1.rounds, (x) => x.hostpath.steps['NodePublishVolume']!.p50, (x) => x.tscsi.steps['NodePublishVolume']!.p50)
    t.push({ name: 'NodePublishVolume p50 vs hostpathplugin', goal: '≥ 20× faster', measured: range(ratio), pass: ratio.median >= 20 })
  }
  if (r.scale && r.scale.length >= 2) {
    const lo = r.scale[0]!
    const hi = r.scale[r.scale.length - 1]!
    const ratio = hi.tscsi.publishP50 / lo.tscsi.publishP50
    t.push({
      name: `Publish p50 with ${hi.mounts} other mounts vs ${lo.mounts}`, goal: '≤ 2×',
      measured: `${fmtRatio(ratio)} (${fmt(hi.tscsi.publishP50)} vs ${fmt(lo.tscsi.publishP50)} ms)`, pass: ratio <= 2,
    })
  }
  if (r.memory) {
    const s = r.memory.samples
    const idle = s[0]!.rss['tscsi-node']!
    t.push({ name: 'Node plugin idle RSS', goal: '≤ 80 MB', measured: `${fmt(idle)} MB`, pass: idle <= 80 })
  }
  if (r.memory && r.memory.batch > 0 && r.memory.samples.length >= 3) {
    const s = r.memory.samples
    const idle = s[0]!.rss['tscsi-node']!
    const a = s[s.length - 2]!
    const b = s[s.length - 1]!
    const growth = b.rss['tscsi-node']! - a.rss['tscsi-node']!
    const noise = Math.max(5, 0.05 * a.rss['tscsi-node']!)
    t.push({
      name: `Node plugin RSS growth, ${a.lifecycles} → ${b.lifecycles} lifecycles`, goal: `none beyond noise (≤ ${fmt(noise)} MB)`,
      measured: `${growth >= 0 ? '+' : ''}${fmt(growth)} MB (idle ${fmt(idle)} → ${fmt(a.rss['tscsi-node']!)} → ${fmt(b.rss['tscsi-node']!)} MB)`, pass: growth <= noise,
    })
  }
  return t
}

export function render(r: Results): string {
  const out: string[] = []
  const m = r.meta
  out.push(`## tscsi benchmark (${m['mode']}) — ${m['date']}`)
  out.push('')
  out.push(`Machine: ${m['cpus']} × ${m['cpu']}, ${m['memory']}, kernel ${m['kernel']}, ${m['os']}; Node ${m['node']}; hostpathplugin ${m['hostpath']}; ` +
    `tscsi log level ${m['logLevel']}${m['nodeFlags'] ? `; extra node flags: ${m['nodeFlags']}` : ''}. Load average at start ${m['loadavgAtStart']}. Runtime ${fmt(r.runtimeSeconds)} s.`)
  if (r.lifecycle?.length) {
    out.push('')
    out.push(`### Lifecycle (CreateVolume → NodeStageVolume → NodePublishVolume → write 4 KiB → NodeUnpublishVolume → NodeUnstageVolume → DeleteVolume)`)
    out.push('')
    out.push(`${r.lifecycle[0]!.rounds.length} interleaved rounds (tscsi, hostpath, tscsi, hostpath, ...) of ${m['roundSeconds']} s per concurrency; every number is the median across rounds. ` +
      '"Other load" is the most CPU that processes outside the benchmark used in any round (0 on a quiet machine).')
    const busy = Math.max(...r.lifecycle.flatMap((l) => l.rounds.flatMap((x) => [x.tscsi.foreignCores, x.hostpath.foreignCores])))
    if (busy > 0.2) out.push('', `**Warning: other processes used up to ${fmt(busy, 2)} cores during the rounds; these numbers are disturbed. Re-run on a quiet machine.**`)
    out.push('')
    out.push(lifecycleTables(r.lifecycle))
    if (r.floor) {
      out.push('')
      out.push(`Round trip of an RPC that does no work (NodeGetCapabilities, one at a time, ${r.floor.tscsi.n} calls; the harness's grpc-js client included): ` +
        `tscsi p50 ${fmt(r.floor.tscsi.p50)} ms (handler ${fmt(r.floor.tscsiServerP50)} ms), hostpath p50 ${fmt(r.floor.hostpath.p50)} ms. ` +
        'Every client-side number above contains this floor.')
    }
  }
  if (r.scale?.length) {
    out.push('')
    out.push('### Publish and unpublish with unrelated mounts present (ms, client side; p50 / p99)')
    out.push('')
    out.push(table(
      ['other bind mounts', 'mountinfo lines', 'mountinfo read+parse', 'tscsi publish', 'tscsi unpublish', 'tscsi server publish p50', 'hostpath publish', 'hostpath unpublish'],
      r.scale.map((s) => [
        String(s.mounts), String(s.tableLines), fmt(s.scanMs),
        `${fmt(s.tscsi.publishP50)} / ${fmt(s.tscsi.publishP99)}`, `${fmt(s.tscsi.unpublishP50)} / ${fmt(s.tscsi.unpublishP99)}`, fmt(s.tscsi.serverPublishP50),
        s.hostpath ? `${fmt(s.hostpath.publishP50)} / ${fmt(s.hostpath.publishP99)}` : '-',
        s.hostpath ? `${fmt(s.hostpath.unpublishP50)} / ${fmt(s.hostpath.unpublishP99)}` : '-',
      ]),
    ))
    const it = r.scale[0]!
    out.push('')
    out.push(`${it.tscsi.iterations} publish+unpublish pairs per level for tscsi${it.hostpath ? `, ${it.hostpath.iterations} for hostpath` : ''}, each to a fresh target.`)
  }
  if (r.store) {
    const s = r.store
    out.push('')
    out.push(`### Controller with ${s.volumes} volumes in the local store (ms)`)
    out.push('')
    out.push(table(
      ['operation', 'p50', 'p99', 'samples', 'note'],
      [
        ['CreateVolume', fmt(s.create.p50), fmt(s.create.p99), String(s.create.n), 'one at a time, new names'],
        ['DeleteVolume', fmt(s.delete.p50), fmt(s.delete.p99), String(s.delete.n), 'the volumes just created'],
        ['ListVolumes (all)', fmt(s.listAll.p50), fmt(s.listAll.p99), String(s.listAll.n), `${s.listAll.entries} entries, ~${fmt(s.listAll.jsonBytes / 1e6)} MB as JSON`],
        ['ListVolumes (max_entries 500)', fmt(s.listPage.p50), fmt(s.listPage.p99), String(s.listPage.n), `per page; a walk of ${s.listPage.pages} pages takes ${fmt(s.listWalkMs)} ms`],
      ],
    ))
    out.push('')
    out.push(`The volumes were written into the store folder through the store's own code (${fmt(s.populateSeconds)} s), then the controller and node plugin ` +
      `were started on it: both answered Probe after ${fmt(s.restartSeconds)} s. RSS with the store loaded: controller ${fmt(s.rss['tscsi-controller'] ?? NaN)} MB, ` +
      `node plugin ${fmt(s.rss['tscsi-node'] ?? NaN)} MB.`)
  }
  if (r.memory) {
    const procs = Object.keys(r.memory.samples[0]!.rss)
    out.push('')
    out.push('### Memory (VmRSS, MB)')
    out.push('')
    out.push(table(['after', ...procs], r.memory.samples.map((s) => [s.label, ...procs.map((p) => fmt(s.rss[p] ?? NaN))])))
    out.push('')
    if (r.memory.batch > 0) out.push(`Lifecycles at concurrency 16 on tscsi; the sidecar was scraped (/metrics and /healthz) once a second throughout (${r.memory.scrapes} scrapes, ${r.memory.scrapeErrors} failed). ` +
      `Each sample is taken after 3 s of quiet. Peak RSS (VmHWM) of the node plugin: ${fmt(r.memory.samples[r.memory.samples.length - 1]!.hwm['tscsi-node'] ?? NaN)} MB.`)
  }
  if (r.syscalls?.length) {
    out.push('')
    out.push('### Syscalls per call (strace -f -c, an idle window of the same length subtracted)')
    out.push('')
    out.push(table(
      ['driver', 'NodePublishVolume', 'top syscalls', 'NodeUnpublishVolume', 'top syscalls'],
      r.syscalls.map((s) => [
        s.driver, fmt(s.publishTotal), s.publish.slice(0, 6).map(([n, v]) => `${n} ${fmt(v, 2)}`).join(', '),
        fmt(s.unpublishTotal), s.unpublish.slice(0, 6).map(([n, v]) => `${n} ${fmt(v, 2)}`).join(', '),
      ]),
    ))
  }
  out.push('')
  out.push('### Targets')
  out.push('')
  out.push(table(['target', 'goal', 'measured', 'result'], r.targets.map((t) => [t.name, t.goal, t.measured, t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'MISS'])))
  return out.join('\n')
}
