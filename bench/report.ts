// Turns results into the printed tables (Markdown, aligned for a terminal too); the targets are
// judged in targets.ts.
import { FLOOR_BINDS, FLOOR_COMMITS, FLOOR_RTTS } from './floors.js'
import { STEPS } from './lifecycle.js'
import { med, pairedRatio, type LifecycleResult, type Results, type StoreSummary } from './results.js'
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
      fmt(med(l.rounds, (r) => (r.hostpath?.perSecond ?? NaN))),
      range(pairedRatio(l.rounds, (r) => r.tscsi.perSecond, (r) => (r.hostpath?.perSecond ?? NaN))),
      fmt(med(l.rounds, (r) => r.tscsi.cpuMsPerLifecycle)),
      fmt(med(l.rounds, (r) => (r.hostpath?.cpuMsPerLifecycle ?? NaN))),
      fmt(Math.max(...l.rounds.flatMap((r) => [r.tscsi.foreignCores, (r.hostpath?.foreignCores ?? 0)])), 2),
    ]),
  ))
  for (const l of lc) {
    const errs = l.rounds.reduce((s, r) => s + r.tscsi.errors + (r.hostpath?.errors ?? 0), 0)
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
        fmt(med(l.rounds, (r) => (r.hostpath?.steps[s]!.p50 ?? NaN))),
        fmt(med(l.rounds, (r) => (r.hostpath?.steps[s]!.p99 ?? NaN))),
        fmtRatio(pairedRatio(l.rounds, (r) => (r.hostpath?.steps[s]!.p50 ?? NaN), (r) => r.tscsi.steps[s]!.p50).median),
      ]),
    ))
  }
  return out.join('\n')
}

function storeTable(s: StoreSummary): string {
  const out: string[] = []
  out.push(`### Controller with ${s.volumes} volumes in the local store (ms, client side)`)
  out.push('')
  out.push(table(
    ['operation', 'p50', 'p99', 'samples', 'note'],
    [
      ['CreateVolume', fmt(s.create.p50), fmt(s.create.p99), String(s.create.n), 'one at a time, new names, each deleted before the next'],
      ['DeleteVolume', fmt(s.delete.p50), fmt(s.delete.p99), String(s.delete.n), 'the volume just created'],
      ['ListVolumes (all)', fmt(s.listAll.p50), fmt(s.listAll.p99), String(s.listAll.n), `${s.listAll.entries} entries, ~${fmt(s.listAll.jsonBytes / 1e6)} MB as JSON`],
      ['ListVolumes (all), undecoded', fmt(s.listRaw.p50), fmt(s.listRaw.p99), String(s.listRaw.n), 'the same, received as bytes: without the client\'s protobuf decoding'],
      ['ListVolumes (max_entries 500)', fmt(s.listPage.p50), fmt(s.listPage.p99), String(s.listPage.n), `per page; a walk of ${s.listPage.pages} pages takes ${fmt(s.listWalkMs)} ms`],
    ],
  ))
  out.push('')
  out.push(`The volumes were written into the store folder through the store's own code (${fmt(s.populateSeconds)} s), then the controller and node plugin ` +
    `were started on it: both answered Probe after ${fmt(s.restartSeconds)} s. RSS with the store loaded: controller ${fmt(s.rss['tscsi-controller'] ?? NaN)} MB, ` +
    `node plugin ${fmt(s.rss['tscsi-node'] ?? NaN)} MB.`)
  return out.join('\n')
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
    const busy = Math.max(...r.lifecycle.flatMap((l) => l.rounds.flatMap((x) => [x.tscsi.foreignCores, (x.hostpath?.foreignCores ?? 0)])))
    if (busy > 0.2) out.push('', `**Warning: other processes used up to ${fmt(busy, 2)} cores during the rounds; these numbers are disturbed. Re-run on a quiet machine.**`)
    out.push('')
    out.push(lifecycleTables(r.lifecycle))
  }
  if (r.floor) {
    const f = r.floor
    out.push('')
    out.push('### Floors (measured in this run)')
    out.push('')
    out.push(table(['floor', 'p50', 'p99', 'samples', 'what'], [
      ['rtt', fmt(f.rtt.p50), fmt(f.rtt.p99), String(f.rtt.n), `Identity.Probe to tscsi's node plugin, grpc-js over a unix socket${f.rttHostpath ? ` (hostpathplugin: ${fmt(f.rttHostpath.p50)} ms)` : ''}`],
      ['commit', fmt(f.commit.p50), fmt(f.commit.p99), String(f.commit.n), 'durable write in the state dir\'s filesystem (temp file, fsync, rename, fsync of the directory)'],
      ['bind', fmt(f.bind.p50), fmt(f.bind.p99), String(f.bind.n), 'bind mount(2) + umount2(2) through native/ (koffi)'],
    ]))
    out.push('')
    out.push(`Lifecycle floor = ${FLOOR_RTTS} × rtt + ${FLOOR_COMMITS} × commit + ${FLOOR_BINDS} × bind = ${FLOOR_RTTS} × ${fmt(f.rtt.p50)} + ${FLOOR_COMMITS} × ${fmt(f.commit.p50)} + ` +
      `${FLOOR_BINDS} × ${fmt(f.bind.p50)} = **${fmt(f.lifecycle)} ms** (p50s, ms): six RPCs, the two commits a crash-safe lifecycle needs (creation and deletion), stage's and publish's binds.`)
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
  for (const st of r.store ?? []) out.push('', storeTable(st))
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
  out.push(table(['measure', 'measured', 'target', 'result'], r.targets.map((t) => [t.name, t.measured, t.goal, t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'MISS'])))
  return out.join('\n')
}
