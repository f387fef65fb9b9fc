// The physical floors of issue 17, measured in the same run as the drivers: what a volume
// lifecycle cannot go below on this machine, whatever the driver does.
//   rtt     a grpc-js unary round trip over a unix socket (an empty Identity.Probe)
//   commit  one durable write on the state dir's filesystem, through the store's own helper
//           (common/store/atomic.ts: temp file, fsync, rename, fsync of the directory)
//   bind    a bind mount(2) plus umount2(2) through native/ (koffi), synchronous as the node
//           plugin's binds are
// A lifecycle makes six RPCs, two durable commits (the volume's creation and its deletion: the
// two facts a crash must not lose) and two binds (stage, publish), so its floor is
// 6 × rtt + 2 × commit + 2 × bind.
import { mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { writeFileAtomic } from '../common/store/atomic.js'
import { MNT, MS, mount, umount2 } from '../native/index.js'
import type { CsiClient } from '../common/client.js'
import type { StepStats } from './results.js'
import { msSince, percentile } from './stats.js'

export const FLOOR_RTTS = 6
export const FLOOR_COMMITS = 2
export const FLOOR_BINDS = 2

export interface FloorResult {
  /** Identity.Probe against tscsi's node plugin and against hostpathplugin, ms. */
  rtt: StepStats
  rttHostpath?: StepStats
  commit: StepStats
  bind: StepStats
  /** FLOOR_RTTS × rtt + FLOOR_COMMITS × commit + FLOOR_BINDS × bind, from the p50s, ms. */
  lifecycle: number
}

function stats(samples: number[]): StepStats {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length }
}

async function timeEach(n: number, f: (i: number) => unknown): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    await f(i)
    out.push(msSince(t0))
  }
  return out
}

export function lifecycleFloor(rtt: number, commit: number, bind: number): number {
  return FLOOR_RTTS * rtt + FLOOR_COMMITS * commit + FLOOR_BINDS * bind
}

/**
 * Measures the three floors. stateFs is a folder on the filesystem of tscsi's state dir (the
 * commits go there); work is a scratch folder for the bind pair.
 */
export async function measureFloors(o: { probe: CsiClient<'Identity'>; probeHostpath?: CsiClient<'Identity'>; stateFs: string; work: string; calls: number }): Promise<FloorResult> {
  for (let i = 0; i < 20; i++) await o.probe.Probe({}) // warm the channel and the JIT
  const rtt = await timeEach(o.calls, () => o.probe.Probe({}))
  const rttHostpath = o.probeHostpath && (await timeEach(o.calls, () => o.probeHostpath!.Probe({})))

  const commitDir = path.join(o.stateFs, 'floor-commit')
  mkdirSync(commitDir, { recursive: true })
  // A document the size of a volume spec, replacing itself as the store's writes do.
  const doc = JSON.stringify({ name: 'pvc-00000000-0000-0000-0000-000000000000', node: 'bench-node', kind: 'dir', pool: 'default', capacityBytes: '1048576', parameters: {} })
  const commit = await timeEach(Math.max(20, Math.round(o.calls / 5)), () => writeFileAtomic(path.join(commitDir, 'floor.spec.json'), doc))
  rmSync(commitDir, { recursive: true, force: true })

  const src = path.join(o.work, 'floor-src')
  const dst = path.join(o.work, 'floor-dst')
  mkdirSync(src, { recursive: true })
  mkdirSync(dst, { recursive: true })
  const bind = await timeEach(o.calls, () => {
    mount(src, dst, null, MS.BIND, null)
    umount2(dst, MNT.UMOUNT_NOFOLLOW)
  })
  rmSync(src, { recursive: true })
  rmSync(dst, { recursive: true })

  const r = { rtt: stats(rtt), commit: stats(commit), bind: stats(bind) }
  return { ...r, ...(rttHostpath && { rttHostpath: stats(rttHostpath) }), lifecycle: lifecycleFloor(r.rtt.p50, r.commit.p50, r.bind.p50) }
}
