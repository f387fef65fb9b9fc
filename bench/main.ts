#!/usr/bin/env node
// npm run bench (scripts/bench.sh): tscsi against kubernetes-csi's hostpathplugin on this machine,
// same harness, interleaved rounds, and against the floors of this machine (floors.ts). Prints the
// tables and issue 17's targets (targets.ts: measured / target / PASS or MISS), and writes the
// results as JSON and Markdown to .tools/bench/. It never asserts timings: numbers only. Without
// the hostpathplugin binary everything else runs, tscsi alone, and the comparisons say so.
//
// Environment:
//   BENCH_QUICK=1            a smoke run of about a minute (short rounds, fewer volumes and mounts)
//   BENCH_PHASES=a,b         which phases: memory,lifecycle,scale,syscalls,store,stall (default: all)
//   BENCH_ROUNDS=N           interleaved rounds per concurrency (default 3)
//   BENCH_ROUND_SECONDS=S    length of one round (default 5; quick 1)
//   BENCH_NODE_FLAGS="..."   extra node.js flags for every tscsi process (e.g. --cpu-prof --cpu-prof-dir=/tmp/p)
//   BENCH_PROFILE=1          shorthand: --cpu-prof into .tools/bench/profiles/<time>/, summarised at the end
//   BENCH_LOG_LEVEL=L        tscsi's --log-level (default info, as deployed: one log line per RPC)
//   BENCH_HOSTPATH_BIN=PATH  the hostpathplugin binary (scripts/bench.sh builds it into .tools/bin)
//   BENCH_KEEP=1             keep the temp folder (logs, strace output) instead of removing it
//   BENCH_WAIT_QUIET=S       before each pair of rounds wait up to S s for other processes to go quiet
//                            (default 20; quick 0). Each round records the foreign load it saw anyway.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { lifecycle, runRound, STEPS, type RoundResult } from './lifecycle.js'
import { startHostpath, startTscsi, type Driver, type HostpathDriver, type TscsiDriver } from './drivers.js'
import { BackgroundMounts, detachAllUnder, mountsUnder } from './mounts.js'
import { formatSummary, ownInclusive, summarise } from './profile.js'
import { OUT_DIR, ROOT } from './paths.js'
import { foreignLoad, memoryMiB } from './procs.js'
import { config, type Config } from './config.js'
import { measureFloors } from './floors.js'
import { render } from './report.js'
import { judge } from './targets.js'
import { storePhase } from './store-phase.js'
import { summariseRound, stepStats, type LifecycleResult, type MemSample, type Results, type RoundSummary, type ScaleDriverStats, type ScaleLevel } from './results.js'
import { logOffset, mountInfoScanMs, publishLoop, serverTimes, type PublishResult } from './scale.js'
import { haveStrace, syscallsPerPublish } from './syscalls.js'
import { msSince, percentile, Recorder } from './stats.js'

const say = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`)
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

function machine(hostpathBin: string, haveHostpath: boolean): Record<string, string | number> {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
  let osName = os.type()
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName
  } catch {
    /* keep os.type() */
  }
  let hostpath = haveHostpath ? 'unknown' : 'missing (comparisons skipped)'
  if (haveHostpath) try {
    hostpath = execFileSync(hostpathBin, ['--version'], { encoding: 'utf8' }).trim().split(/\s+/).pop() ?? hostpath
  } catch {
    /* reported as unknown */
  }
  return {
    date: new Date().toISOString(), cpus: os.cpus().length, cpu, memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`, kernel: os.release(),
    os: osName, node: process.version, hostpath,
  }
}

/** Server-side p50 per RPC from tscsi's logs since the given offsets. */
function serverP50Since(d: Driver, offsets: number[]): Record<string, number> {
  const out: Record<string, number> = {}
  d.rpcLogs.forEach((f, i) => {
    for (const [m, list] of serverTimes(f, offsets[i] ?? 0)) out[m] = percentile(list, 50)
  })
  return out
}

/**
 * On a shared machine, waits (at most maxSeconds) until processes other than ours use less than
 * 0.15 cores over a one-second window, so a round does not start in the middle of someone's build.
 */
async function waitQuiet(maxSeconds: number, pids: () => number[]): Promise<void> {
  if (maxSeconds <= 0) return
  const until = Date.now() + maxSeconds * 1000
  let load = NaN
  while (Date.now() < until) {
    const m = foreignLoad(pids)
    await sleep(1000)
    load = m()
    if (load < 0.15) return
  }
  say(`  the machine stayed busy (other processes use ${load.toFixed(2)} cores); going ahead`)
}

async function round(d: Driver, concurrency: number, c: Config, podsDir: string, tag: string, allPids: () => number[]): Promise<RoundSummary> {
  const offsets = d.rpcLogs.map(logOffset)
  const foreign = foreignLoad(allPids)
  const r: RoundResult = await runRound(d, { concurrency, durationMs: c.roundSeconds * 1000, maxLifecycles: 1_000_000, podsDir, tag })
  const foreignCores = foreign()
  if (r.rec.errors > 0) say(`  ${d.name}: ${r.rec.errors} failed lifecycles, e.g. ${r.rec.errorMessages[0]}`)
  await sleep(50)
  return summariseRound(r, STEPS, serverP50Since(d, offsets), foreignCores)
}

function mem(procs: Record<string, number>): { rss: Record<string, number>; hwm: Record<string, number> } {
  const rss: Record<string, number> = {}
  const hwm: Record<string, number> = {}
  for (const [name, pid] of Object.entries(procs)) {
    const m = memoryMiB(pid)
    rss[name] = (m.rss * 2 ** 20) / 1e6
    hwm[name] = (m.hwm * 2 ** 20) / 1e6
  }
  return { rss, hwm }
}

function scaleStats(p: PublishResult): ScaleDriverStats {
  const pub = stepStats(p.client, 'NodePublishVolume')
  const unpub = stepStats(p.client, 'NodeUnpublishVolume')
  return {
    publishP50: pub.p50, publishP99: pub.p99, unpublishP50: unpub.p50, unpublishP99: unpub.p99,
    serverPublishP50: p.serverP50['NodePublishVolume'] ?? NaN, serverUnpublishP50: p.serverP50['NodeUnpublishVolume'] ?? NaN, iterations: p.iterations,
  }
}

async function main(): Promise<void> {
  const c = config()
  // Without the comparison driver (its source could not be had) everything else still runs, and
  // the rows that need it say they were skipped.
  const haveHostpath = existsSync(c.hostpathBin)
  const started = process.hrtime.bigint()
  if (process.getuid?.() !== 0) throw new Error('the benchmark mounts and unmounts: run it as root (npm run bench does so through scripts/bench.sh)')
  const ns = readFileSync('/proc/self/mountinfo', 'utf8') !== readFileSync('/proc/1/mountinfo', 'utf8') ? 'private mount namespace' : 'host mount namespace'
  say(`${c.quick ? 'quick' : 'full'} run; phases ${[...c.phases].join(', ')}; ${ns}`)

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tscsi-bench-'))
  const podsDir = path.join(tmp, 'pods')
  mkdirSync(podsDir)
  const drivers: Driver[] = []
  const pidNames = new Map<number, string>()
  let bg: BackgroundMounts | undefined
  let cleaned = false
  const cleanup = async (): Promise<void> => {
    if (cleaned) return
    cleaned = true
    bg?.clear()
    await Promise.all(drivers.map((d) => d.stop().catch(() => undefined)))
    const detached = detachAllUnder(tmp)
    if (detached > 0) say(`detached ${detached} mounts left under ${tmp}`)
    if (c.keep) say(`kept ${tmp}`)
    else if (mountsUnder(tmp).length === 0) rmSync(tmp, { recursive: true, force: true })
    else say(`NOT removing ${tmp}: mounts are still there`)
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      say(`${sig}: cleaning up`)
      void cleanup().finally(() => process.exit(130))
    })
  }

  const results: Results = {
    meta: {
      ...machine(c.hostpathBin, haveHostpath), mode: c.quick ? 'BENCH_QUICK=1' : 'full', logLevel: c.logLevel, nodeFlags: c.nodeFlags.join(' '), roundSeconds: c.roundSeconds,
      namespace: ns, loadavgAtStart: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    },
    targets: [],
    runtimeSeconds: 0,
  }
  try {
    say(`starting tscsi (controller, node plugin, metrics sidecar)${haveHostpath ? ' and hostpathplugin' : `; no hostpathplugin (${c.hostpathBin} is missing): its comparisons are skipped`}`)
    const tscsi: TscsiDriver = await startTscsi({ dir: path.join(tmp, 'tscsi'), nodeFlags: c.nodeFlags, logLevel: c.logLevel, sidecar: true, coPaths: tmp })
    drivers.push(tscsi)
    const hostpath: HostpathDriver | undefined = haveHostpath ? await startHostpath({ dir: path.join(tmp, 'hostpath'), bin: c.hostpathBin }) : undefined
    if (hostpath) drivers.push(hostpath)
    const pids: Record<string, number> = {
      'tscsi-node': tscsi.nodeProc.pid, 'tscsi-controller': tscsi.controllerProc.pid, 'tscsi-metrics': tscsi.sidecarProc!.pid, ...(hostpath && { hostpathplugin: hostpath.proc.pid }),
    }
    for (const [name, pid] of Object.entries(pids)) pidNames.set(pid, name)
    await sleep(3000)
    const memSamples: MemSample[] = [{ label: 'idle (started, 3 s quiet)', lifecycles: 0, ...mem(pids) }]

    // One checked lifecycle each: the write must land in the volume, the target must go away.
    for (const d of drivers) await lifecycle(d, 0, new Recorder(), { podsDir, tag: 'verify', verify: true })
    say(`${hostpath ? 'both drivers pass' : 'tscsi passes'} a checked lifecycle (write lands in the volume, target removed)`)
    say(`floors: ${c.floorCalls} Probes, durable commits in the state dir's filesystem, bind mount + umount2 pairs`)
    results.floor = await measureFloors({ probe: tscsi.identity, ...(hostpath && { probeHostpath: hostpath.identity }), stateFs: path.dirname(tscsi.stateDir), work: tmp, calls: c.floorCalls })

    if (c.phases.has('memory')) {
      say(`memory: 2 × ${c.memoryBatch} lifecycles on tscsi at concurrency 16, sidecar scraped every second`)
      let scrapes = 0
      let scrapeErrors = 0
      let busy = false
      const scraper = setInterval(() => {
        if (busy) return
        busy = true
        Promise.all(['/metrics', '/healthz'].map((p) => fetch(tscsi.sidecarUrl + p, { signal: AbortSignal.timeout(5000) }).then((r) => r.text().then(() => r.ok))))
          .then((oks) => { scrapes++; if (oks.some((ok) => !ok)) scrapeErrors++ }, () => { scrapes++; scrapeErrors++ })
          .finally(() => (busy = false))
      }, 1000)
      try {
        for (let b = 1; b <= 2; b++) {
          const r = await runRound(tscsi, { concurrency: 16, durationMs: 10 * 60_000, maxLifecycles: c.memoryBatch, podsDir, tag: `mem${b}` })
          if (r.rec.errors) say(`  ${r.rec.errors} failed lifecycles, e.g. ${r.rec.errorMessages[0]}`)
          await sleep(3000)
          memSamples.push({ label: `${b * c.memoryBatch} lifecycles`, lifecycles: b * c.memoryBatch, ...mem(pids) })
        }
      } finally {
        clearInterval(scraper)
      }
      results.memory = { batch: c.memoryBatch, samples: memSamples, scrapes, scrapeErrors }
    }

    if (c.phases.has('lifecycle')) {
      const lc: LifecycleResult[] = []
      for (const concurrency of [1, 16]) {
        say(`lifecycle: concurrency ${concurrency}, warm-up then ${c.rounds} rounds A B A B of ${c.roundSeconds} s`)
        for (const d of drivers) await runRound(d, { concurrency, durationMs: Math.min(1000, c.roundSeconds * 500), maxLifecycles: 1_000_000, podsDir, tag: `warm${concurrency}` })
        const rounds: LifecycleResult['rounds'] = []
        for (let i = 0; i < c.rounds; i++) {
          const allPids = (): number[] => drivers.flatMap((d) => d.procs.map((p) => p.pid))
          await waitQuiet(c.waitQuietSeconds, allPids)
          const a = await round(tscsi, concurrency, c, podsDir, `c${concurrency}r${i}`, allPids)
          const b = hostpath && (await round(hostpath, concurrency, c, podsDir, `c${concurrency}r${i}`, allPids))
          say(`  round ${i + 1}: tscsi ${a.perSecond.toFixed(1)}/s${b ? `, hostpath ${b.perSecond.toFixed(1)}/s` : ''}; other processes used ${a.foreignCores.toFixed(2)}${b ? ` / ${b.foreignCores.toFixed(2)}` : ''} cores`)
          rounds.push({ tscsi: a, ...(b && { hostpath: b }) })
        }
        lc.push({ concurrency, rounds })
      }
      results.lifecycle = lc
    }

    if (c.phases.has('scale')) {
      bg = new BackgroundMounts(path.join(tmp, 'background'))
      const levels: ScaleLevel[] = []
      try {
        for (const n of c.scaleLevels) {
          const t0 = process.hrtime.bigint()
          bg.grow(n)
          say(`scale: ${n} unrelated bind mounts (made in ${msSince(t0).toFixed(0)} ms); publish+unpublish ×${c.scaleIterations} tscsi, ×${c.scaleIterationsHostpath} hostpath`)
          const scanMs = mountInfoScanMs()
          const ts = await publishLoop(tscsi, podsDir, `m${n}`, c.scaleIterations)
          const hp = hostpath && (await publishLoop(hostpath, podsDir, `m${n}`, c.scaleIterationsHostpath))
          levels.push({ mounts: n, tableLines: ts.tableLines, scanMs, tscsi: scaleStats(ts), ...(hp && { hostpath: scaleStats(hp) }) })
        }
      } finally {
        const t0 = process.hrtime.bigint()
        bg.clear()
        say(`scale: background mounts removed in ${msSince(t0).toFixed(0)} ms`)
      }
      results.scale = levels
    }

    if (c.phases.has('syscalls')) {
      if (haveStrace()) {
        say(`syscalls: strace -f -c over ${c.straceIterations} publishes and unpublishes each`)
        results.syscalls = [
          await syscallsPerPublish(tscsi, tscsi.nodeProc.pid, path.join(tmp, 'strace'), c.straceIterations).catch((e) => { throw new Error(`strace of tscsi: ${(e as Error).message}`) }),
          ...(hostpath ? [await syscallsPerPublish(hostpath, hostpath.proc.pid, path.join(tmp, 'strace'), Math.min(c.straceIterations, 40))] : []),
        ]
      } else {
        say('syscalls: strace is not installed; skipped (scripts/bench.sh installs it with apt when it can)')
      }
    }

    if (!results.memory) {
      memSamples.push({ label: 'end of the other phases', lifecycles: -1, ...mem(pids) })
      results.memory = { batch: 0, samples: memSamples, scrapes: 0, scrapeErrors: 0 }
    }

    if (c.phases.has('store')) {
      // Last phase: it leaves the store full and restarts tscsi on it (bench/store-phase.ts).
      results.store = (await storePhase(tscsi, { sizes: c.storeSizes, samples: c.storeSamples, drivers, pidNames, say })).store
    }
  } finally {
    say('stopping the drivers and cleaning up')
    await cleanup()
  }

  if (c.phases.has('stall')) {
    // Its own process and drivers, after the others are gone: it freezes a filesystem to hold a
    // NodeStageVolume in mount(2), and times Probe and another volume's publish meanwhile.
    say('stall: Probe and NodePublishVolume while a slow kernel call is in flight (bench/stall.ts)')
    execFileSync(process.execPath, [path.join(ROOT, 'dist/bench/stall.js')], { stdio: 'inherit' })
  }

  results.runtimeSeconds = msSince(started) / 1000
  results.targets = judge(results)
  const text = render(results)
  mkdirSync(OUT_DIR, { recursive: true })
  writeFileSync(path.join(OUT_DIR, 'latest.json'), JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2))
  writeFileSync(path.join(OUT_DIR, 'latest.md'), text + '\n')
  process.stdout.write('\n' + text + '\n')

  if (c.profileDir) {
    // node names them CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    const files = readdirSync(c.profileDir).filter((f) => f.endsWith('.cpuprofile'))
    process.stdout.write(`\n### CPU profiles (${c.profileDir})\n\n`)
    for (const f of files) {
      const pid = Number(f.split('.')[3])
      const s = summarise(path.join(c.profileDir, f))
      process.stdout.write(formatSummary(s, pidNames.get(pid) ?? `pid ${pid}`, 15) + '\n  our functions by inclusive time:\n' +
        ownInclusive(s, 10).map((x) => `    ${((100 * x.totalMs) / s.busyMs).toFixed(1).padStart(5)}%  ${x.key}`).join('\n') + '\n\n')
    }
  }
  process.stdout.write(`\nResults: ${path.relative(process.cwd(), path.join(OUT_DIR, 'latest.json'))} and latest.md; runtime ${results.runtimeSeconds.toFixed(0)} s.\n`)
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: failed: ${(e as Error)?.stack ?? String(e)}\n`)
  process.exit(1)
})
