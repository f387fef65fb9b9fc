// What a CreateVolume costs with one controller: p50/p90 of sequential CreateVolume calls (each
// a new 1 MiB dir volume, realised by a real node plugin), on the local store and on the
// Kubernetes store against a real throwaway API server. Prints numbers; asserts nothing.
//
//   npx tap --reporter=tap bench/create-p50.ts                    # this tree's dist/
//   BENCH_DIST=/path/to/other/checkout npx tap --reporter=tap bench/create-p50.ts
//
// BENCH_CALLS (default 200) calls per store, after 20 warm-up calls. Root only (as the e2e).
import t from 'tap'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { KUBECTL, missingApiServerBinaries, startApiServer } from '../test/helpers/apiserver.js'
import type { TT } from '../test/helpers/csi.js'
import { client, mountCap, ROOT, spawnDriver, type Proc } from '../test/helpers/driver.js'

const run = promisify(execFile)
const DIST = process.env.BENCH_DIST ?? ROOT
const CALLS = Number(process.env.BENCH_CALLS ?? 200)
const WARMUP = 20

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function measure(t: TT, label: string, dir: string, extra: string[]): Promise<void> {
  const procs: Proc[] = []
  t.teardown(async () => {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
  })
  const socks = path.join(dir, 's')
  // One folder for both: on the local store they share the state folder, as `npm start` does.
  procs.push(await spawnDriver({ kind: 'node', dir, socket: `${socks}-n.sock`, distRoot: DIST, nodeId: 'bench-node', extra }))
  const ctl = await spawnDriver({ kind: 'controller', dir, socket: `${socks}-c.sock`, distRoot: DIST, extra })
  procs.push(ctl)
  const c = client('Controller', ctl.socket)
  t.teardown(() => c.close())
  const times: number[] = []
  for (let i = 0; i < WARMUP + CALLS; i++) {
    const t0 = process.hrtime.bigint()
    await c.CreateVolume!({ name: `pvc-${i}`, volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(1 << 20) } })
    if (i >= WARMUP) times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  times.sort((a, b) => a - b)
  t.comment(`${label}: CreateVolume p50 ${pct(times, 50).toFixed(2)} ms, p90 ${pct(times, 90).toFixed(2)} ms (${CALLS} calls, ${DIST})`)
  t.pass(label)
}

if (process.getuid?.() !== 0) {
  t.comment('skipped: root only (it mounts, as the node plugin does)')
} else {
  t.setTimeout(600_000)
  t.test('local store', async (t) => {
    await measure(t, 'local store', t.testdir(), [])
  })
  t.test('kubernetes store', { skip: missingApiServerBinaries().length > 0 ? 'no API server binaries' : false }, async (t) => {
    const dir = t.testdir()
    const api = await startApiServer(path.join(dir, 'api'))
    t.teardown(() => api.stop())
    await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'apply', '-f', path.join(DIST, 'deploy/kubernetes/crds')])
    await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'wait', '--for', 'condition=established', '--timeout=60s', 'crd', '--all'])
    await measure(t, 'kubernetes store', dir, ['--store', 'kubernetes', '--kubeconfig', api.kubeconfigPath])
  })
}
