// The soak of issue 7 (item 6), shared by test/soak-short.test.ts and scripts/soak.sh: many
// volumes (a mix of dir, image and block) through full lifecycles against the real controller and
// node plugin, each published to several targets at once, while the driver's resources are
// sampled. A leak shows as a count that does not come back: open fds of either process, mounts
// and loop devices under the work folder must return exactly to the baseline; RSS may not
// (V8 keeps a grown heap), so it gets a tolerance and a plateau check instead.
//
// Run directly (scripts/soak.sh does): node --import @tapjs/typescript/import test/helpers/soak.ts
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, realpathSync, rmdirSync, rmSync, writeSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { listLoopDevices, loopDetach, MNT, parseBackingFile, umount2 } from '../../native/index.js'
import type { ClientRequestOf, ClientResponseOf } from '../../common/protocol.js'
import type { VolumeCapability } from '../../proto/gen/csi/v1/VolumeCapability.js'
import { client, mountsUnder, start, type CsiClient, type Method, type Present, type Proc, type Service } from './driver.js'

const MiB = 1 << 20
type Kind = 'dir' | 'image' | 'block'

export interface SoakOptions {
  /** Work folder: the data root, the store and every CO path live under it. */
  dir: string
  /** Volumes to run (after the warm-up); the run goes on past them until minSeconds have passed. */
  volumes: number
  minSeconds: number
  /** How long each "pod" keeps its targets, doing I/O through them, before unpublishing (ms, ±100 %). */
  holdMs: number
  /** Volumes in flight at once. */
  concurrency: number
  /** Targets each volume is published to, in parallel. */
  targets: number
  /** Volumes run before the baseline is sampled (connections, JIT and pools warmed up). */
  warmup: number
  /** Called with each driver process as it starts, so a test rig can kill it. */
  onStart?: (p: Proc) => void
  log?: (line: string) => void
}

export interface Sample {
  fds: { controller: number; node: number }
  rssMiB: { controller: number; node: number }
  /** Mounts under the work folder (the driver's own). */
  mounts: number
  /** Loop devices backed by files under the work folder. */
  loops: number
}

export interface SoakReport {
  volumes: number
  byKind: Record<Kind, number>
  rpcs: number
  seconds: number
  volumesPerSec: number
  opsPerSec: number
  baseline: Sample
  mid: Sample
  end: Sample
  /** Lifecycles that failed, with the first few messages. */
  failures: number
  errors: string[]
  /** Volumes the controller still lists, and files left in the data root, after the run. */
  leftoverVolumes: number
  leftoverFiles: string[]
}

/**
 * RSS after the run may exceed the baseline by this much (either process): a grown V8 heap is not
 * returned to the OS at once. 48 MiB or 50 %, whichever is more; and between the middle and the
 * end of the run (where a leak would keep growing linearly) by 24 MiB or 20 %. Measured here:
 * see the numbers the run prints.
 */
export const RSS_TOLERANCE = { endMiB: 48, endRatio: 0.5, plateauMiB: 24, plateauRatio: 0.2 }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const mix: Kind[] = ['dir', 'image', 'dir', 'block', 'image', 'dir', 'block', 'dir', 'image', 'dir'] // 50/30/20

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  return Math.round(Number(kb ?? 0) / 1024)
}

function loopsUnder(dir: string): string[] {
  return listLoopDevices().filter((l) => parseBackingFile(l.backingFile).path.startsWith(dir + '/')).map((l) => l.device)
}

/** Unmounts everything under dir and detaches its loop devices; never throws (teardown). */
export function cleanUnder(dir: string): void {
  for (const mp of mountsUnder(dir).reverse()) try { umount2(mp, MNT.DETACH) } catch { /* gone */ }
  for (const dev of loopsUnder(dir)) try { loopDetach(dev) } catch { /* autoclear got it */ }
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => undefined)
  const dir = realpathSync(o.dir)
  const ctl = await start('controller', dir)
  o.onStart?.(ctl)
  const node = await start('node', dir)
  o.onStart?.(node)
  const c = client('Controller', ctl.socket)
  const n = client('Node', node.socket)
  const pids = { controller: ctl.child.pid!, node: node.child.pid! }
  const sample = (): Sample => ({
    fds: { controller: fdCount(pids.controller), node: fdCount(pids.node) },
    rssMiB: { controller: rssMiB(pids.controller), node: rssMiB(pids.node) },
    mounts: mountsUnder(dir).length,
    loops: loopsUnder(dir).length,
  })
  let rpcs = 0
  const call = async <S extends Service, M extends Method<S>>(svc: CsiClient<S>, method: M, req: ClientRequestOf<S, M>): Promise<Present<ClientResponseOf<S, M>>> => {
    const res = await svc[method](req, 120_000)
    rpcs++
    return res
  }
  const failures: string[] = []
  let failed = 0
  const byKind: Record<Kind, number> = { dir: 0, image: 0, block: 0 }

  /** One volume's whole life; on failure, undoes what it can so later counts show only leaks. */
  async function lifecycle(i: number): Promise<void> {
    const kind = mix[i % mix.length]!
    const block = kind === 'block'
    const cap: VolumeCapability = block
      ? { block: {}, access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' }, access_type: 'block' }
      : { mount: { fs_type: '', mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_MULTI_WRITER' }, access_type: 'mount' }
    const staging = path.join(dir, 'kubelet/staging', String(i))
    const pods = Array.from({ length: o.targets }, (_, j) => path.join(dir, 'kubelet/pods', `${i}-${j}`))
    const targets = pods.map((p) => path.join(p, 'vol'))
    let id = ''
    let stage = false
    const published = new Set<string>()
    try {
      const { volume } = await call(c, 'CreateVolume', {
        name: `soak-${i}`, volume_capabilities: [cap], parameters: kind === 'image' ? { kind: 'image' } : {},
        capacity_range: { required_bytes: String(kind === 'image' ? 8 * MiB : MiB) },
      })
      id = volume.volume_id
      const base = { volume_id: id, volume_capability: cap, volume_context: volume.volume_context }
      mkdirSync(staging, { recursive: true })
      for (const p of pods) mkdirSync(p, { recursive: true })
      await call(n, 'NodeStageVolume', { ...base, staging_target_path: staging })
      stage = true
      await Promise.all(targets.map(async (target) => {
        await call(n, 'NodePublishVolume', { ...base, staging_target_path: staging, target_path: target })
        published.add(target)
      }))
      // Written through the first target, read back through the last: one volume behind both.
      const payload = Buffer.from(`soak volume ${i} ${id}\n`.padEnd(4096, '.'))
      const first = block ? targets[0]! : path.join(targets[0]!, 'probe')
      const last = block ? targets[targets.length - 1]! : path.join(targets[targets.length - 1]!, 'probe')
      const w = openSync(first, block ? 'r+' : 'w')
      try { writeSync(w, payload, 0, payload.length, 0) } finally { closeSync(w) }
      const back = Buffer.alloc(payload.length)
      const r = openSync(last, 'r')
      try { readSync(r, back, 0, back.length, 0) } finally { closeSync(r) }
      if (!back.equals(payload)) throw new Error(`volume ${id} (${kind}): data written through ${first} does not read back through ${last}`)
      // The pods use the volume for a while: more volumes are published at once, and every
      // target is read while the others come and go.
      for (const until = Date.now() + Math.random() * 2 * o.holdMs; Date.now() < until;) {
        await sleep(50)
        for (const target of targets) {
          const fd = openSync(block ? target : path.join(target, 'probe'), 'r')
          try { readSync(fd, back, 0, back.length, 0) } finally { closeSync(fd) }
          if (!back.equals(payload)) throw new Error(`volume ${id} (${kind}): ${target} no longer shows the volume's data`)
        }
      }
      await Promise.all(targets.map(async (target) => {
        await call(n, 'NodeUnpublishVolume', { volume_id: id, target_path: target })
        published.delete(target)
      }))
      await call(n, 'NodeUnstageVolume', { volume_id: id, staging_target_path: staging })
      stage = false
      await call(c, 'DeleteVolume', { volume_id: id })
      byKind[kind]++
    } catch (e) {
      failed++
      if (failures.length < 10) failures.push(`volume ${i} (${kind}${id ? ` ${id}` : ''}): ${(e as { details?: string }).details ?? String(e)}`)
      for (const target of published) await n.NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined)
      if (stage) await n.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined)
      if (id) await c.DeleteVolume({ volume_id: id }).catch(() => undefined)
    } finally {
      // kubelet removes the folders it made; the driver removed the targets.
      for (const p of [...pods, staging]) try { rmdirSync(p) } catch { /* left for the leftover check */ }
    }
  }

  /** Runs volumes from `from` on, until `count` are done and `deadline` (ms since epoch) has passed. */
  async function pool(from: number, count: number, deadline: number, onDone?: (done: number) => void): Promise<number> {
    let next = from
    let done = 0
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (next < from + count || Date.now() < deadline) {
        await lifecycle(next++)
        onDone?.(++done)
      }
    }))
    return done
  }

  /** Waits until fds, mounts and loops are back to `want` (the node settles timers and watches). */
  async function settled(want?: Sample): Promise<Sample> {
    let s = sample()
    for (const end = Date.now() + 15_000; Date.now() < end; await sleep(250)) {
      s = sample()
      if (!want || (s.fds.controller === want.fds.controller && s.fds.node === want.fds.node && s.mounts === want.mounts && s.loops === want.loops)) break
    }
    return s
  }

  try {
    await pool(0, o.warmup, 0)
    await sleep(1500) // the node's debounced capacity report
    const baseline = await settled()
    log(`baseline after ${o.warmup} warm-up volumes: ${JSON.stringify(baseline)}`)
    for (const k of Object.keys(byKind) as Kind[]) byKind[k] = 0
    rpcs = 0
    let mid: Sample | undefined
    const t0 = Date.now()
    const deadline = t0 + o.minSeconds * 1000
    let lastLog = t0
    const total = await pool(o.warmup, o.volumes, deadline, (done) => {
      // Half-way by both measures: a leak keeps growing between here and the end.
      if (!mid && done >= o.volumes / 2 && Date.now() >= t0 + (deadline - t0) / 2) mid = sample()
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now()
        log(`${done} volumes, ${(done / ((Date.now() - t0) / 1000)).toFixed(1)} volumes/s, ${failed} failed, ${JSON.stringify(sample())}`)
      }
    })
    const seconds = (Date.now() - t0) / 1000
    await sleep(1500)
    const end = await settled(baseline)
    const { entries } = await c.ListVolumes({})
    const leftoverFiles = ['data/volumes', 'data/images', 'kubelet/staging', 'kubelet/pods']
      .flatMap((sub) => { try { return readdirSync(path.join(dir, sub)).map((f) => `${sub}/${f}`) } catch { return [] } })
    return {
      volumes: total, byKind, rpcs, seconds, volumesPerSec: total / seconds, opsPerSec: rpcs / seconds,
      baseline, mid: mid ?? end, end, failures: failed, errors: failures, leftoverVolumes: entries.length, leftoverFiles,
    }
  } finally {
    c.close()
    n.close()
  }
}

/** What the report says is wrong; empty when the soak passed. */
export function violations(r: SoakReport): string[] {
  const out: string[] = []
  const { baseline: b, mid: m, end: e } = r
  if (r.failures > 0) out.push(`${r.failures} lifecycles failed: ${r.errors.join(' | ')}`)
  if (r.leftoverVolumes > 0) out.push(`${r.leftoverVolumes} volumes still listed`)
  if (r.leftoverFiles.length > 0) out.push(`left in the work folder: ${r.leftoverFiles.slice(0, 5).join(', ')}${r.leftoverFiles.length > 5 ? ', ...' : ''}`)
  for (const p of ['controller', 'node'] as const) {
    if (e.fds[p] !== b.fds[p]) out.push(`${p} open fds: ${b.fds[p]} before, ${e.fds[p]} after`)
    const endMax = b.rssMiB[p] + Math.max(RSS_TOLERANCE.endMiB, b.rssMiB[p] * RSS_TOLERANCE.endRatio)
    if (e.rssMiB[p] > endMax) out.push(`${p} RSS: ${b.rssMiB[p]} MiB before, ${e.rssMiB[p]} MiB after (tolerance ${Math.round(endMax)} MiB)`)
    const plateauMax = m.rssMiB[p] + Math.max(RSS_TOLERANCE.plateauMiB, m.rssMiB[p] * RSS_TOLERANCE.plateauRatio)
    if (e.rssMiB[p] > plateauMax) out.push(`${p} RSS still growing: ${m.rssMiB[p]} MiB half-way, ${e.rssMiB[p]} MiB at the end`)
  }
  if (e.mounts !== b.mounts) out.push(`mounts: ${b.mounts} before, ${e.mounts} after`)
  if (e.loops !== b.loops) out.push(`loop devices: ${b.loops} before, ${e.loops} after`)
  return out
}

export function formatReport(r: SoakReport): string {
  const row = (what: string, f: (s: Sample) => string) => `  ${what.padEnd(16)} ${f(r.baseline).padEnd(14)} ${f(r.mid).padEnd(14)} ${f(r.end)}`
  return [
    `volumes done:    ${r.volumes} (${r.byKind.dir} dir, ${r.byKind.image} image, ${r.byKind.block} block), ${r.failures} failed`,
    `duration:        ${r.seconds.toFixed(1)} s`,
    `throughput:      ${r.volumesPerSec.toFixed(2)} volumes/s, ${r.opsPerSec.toFixed(1)} RPCs/s (${r.rpcs} RPCs)`,
    `                 ${'baseline'.padEnd(14)} ${'half-way'.padEnd(14)} end`,
    row('controller fds', (s) => String(s.fds.controller)),
    row('node fds', (s) => String(s.fds.node)),
    row('controller RSS', (s) => `${s.rssMiB.controller} MiB`),
    row('node RSS', (s) => `${s.rssMiB.node} MiB`),
    row('mounts', (s) => String(s.mounts)),
    row('loop devices', (s) => String(s.loops)),
  ].join('\n')
}

/** scripts/soak.sh: SOAK_VOLUMES, SOAK_SECONDS, SOAK_CONCURRENCY, SOAK_TARGETS, SOAK_HOLD_MS, SOAK_WARMUP from the environment. */
async function main(): Promise<void> {
  const num = (name: string, dflt: number) => {
    const v = Number(process.env[name] ?? dflt)
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a whole number`)
    return v
  }
  const dir = mkdtempSync(path.join(process.env.SOAK_DIR ?? '/var/tmp', 'tscsi-soak-'))
  const procs: Proc[] = []
  let code = 1
  try {
    const report = await runSoak({
      dir, volumes: num('SOAK_VOLUMES', 2000), minSeconds: num('SOAK_SECONDS', 600), holdMs: num('SOAK_HOLD_MS', 1000),
      concurrency: Math.max(1, num('SOAK_CONCURRENCY', 32)), targets: Math.max(1, num('SOAK_TARGETS', 6)), warmup: num('SOAK_WARMUP', 40), onStart: (p) => procs.push(p), log: (l) => console.log(`soak: ${l}`),
    })
    console.log(formatReport(report))
    const bad = violations(report)
    for (const v of bad) console.log(`SOAK VIOLATION: ${v}`)
    console.log(bad.length === 0 ? 'SOAK PASSED' : `SOAK FAILED (${bad.length} violations)`)
    code = bad.length === 0 ? 0 : 1
  } catch (e) {
    console.error('soak: aborted:', e)
    for (const p of procs) console.error(`--- ${p.socket} log tail ---\n${p.logs().slice(-4000)}`)
  } finally {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    cleanUnder(dir)
    for (const p of procs) rmSync(path.dirname(p.socket), { recursive: true, force: true })
    rmSync(dir, { recursive: true, force: true })
  }
  process.exit(code)
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) void main()
