// The controller with many TscsiVolume objects in a real (throwaway) API server: its RSS and CPU
// once it has listed and is watching them, idle, and while their statuses change; the time until
// it serves them all, and a full ListVolumes. Issue 17 asks for these at 5,000 objects. Prints
// numbers; asserts nothing.
//
//   npx tap --reporter=tap bench/kube-objects.ts          # BENCH_OBJECTS (default 5000)
//   BENCH_CONTROLLER_NODE_FLAGS=--max-old-space-size=128 npx tap --reporter=tap bench/kube-objects.ts
//
// The objects are written through tscsi's own Kubernetes store, as the controller writes them,
// with a Ready status as a node plugin writes it, for a registered node that no plugin serves
// (so nothing realises or changes them behind the measurement). Root only, as the e2e.
import t from 'tap'
import { execFile } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { promisify } from 'node:util'
import { volumeIdFor } from '../common/ids.js'
import { silentLogger } from '../common/log.js'
import { metricsSocketFor } from '../common/process-metrics.js'
import { KubeStore } from '../common/store/kube-store.js'
import type { VolumeSpec } from '../common/store/model.js'
import { KUBECTL, missingApiServerBinaries, startApiServer } from '../test/helpers/apiserver.js'
import { client, ROOT, start, type Proc } from '../test/helpers/driver.js'
import { cpuMs, memoryMiB } from './procs.js'

const run = promisify(execFile)
const OBJECTS = Number(process.env.BENCH_OBJECTS ?? 5000)
const NODE = 'bench-node'
const IDLE_MS = 20_000
/** node flags for the controller (BENCH_CONTROLLER_NODE_FLAGS), e.g. a heap limit to try. */
const NODE_FLAGS = (process.env.BENCH_CONTROLLER_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const rssMiB = (pid: number): number => memoryMiB(pid).rss
const cpuSeconds = (pid: number): number => cpuMs(pid) / 1000

/** V8's heap (used / total) and external memory, in MiB, from the process's own /metrics. */
function heapOf(socket: string): Promise<string> {
  return new Promise((resolve) => {
    http.get({ socketPath: metricsSocketFor(socket), path: '/metrics' }, (res) => {
      let text = ''
      res.on('data', (c) => (text += c))
      res.on('end', () => {
        const v = (m: string): string => (Number(new RegExp(`^${m}(?:\{[^}]*\})? ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20).toFixed(1)
        resolve(`heap ${v('nodejs_heap_size_used_bytes')} used of ${v('nodejs_heap_size_total_bytes')} MiB, external ${v('nodejs_external_memory_bytes')} MiB`)
      })
    }).on('error', (e) => resolve(`no heap figures (${e.message})`))
  })
}

/** Runs fn over items with at most n in flight. */
async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}

const spec = (i: number): VolumeSpec => ({
  name: `pvc-bench-${i}`, node: NODE, kind: 'dir', pool: 'default', capacityBytes: String(1 << 20), accessType: 'mount', projectId: 1_000_000 + i,
  parameters: { kind: 'dir' }, createdAt: new Date().toISOString(), generation: 1,
})

if (process.getuid?.() !== 0) {
  t.comment('skipped: root only (as the e2e)')
} else {
  t.setTimeout(1_800_000)
  t.test(`the controller with ${OBJECTS} TscsiVolume objects`, { skip: missingApiServerBinaries().length > 0 ? 'no API server binaries (bash scripts/k8s-tools.sh)' : false }, async (t) => {
    const dir = t.testdir()
    const api = await startApiServer(path.join(dir, 'api'))
    t.teardown(() => api.stop())
    await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'apply', '-f', path.join(ROOT, 'deploy/kubernetes/crds')])
    await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'wait', '--for', 'condition=established', '--timeout=60s', 'crd', '--all'])
    const store = await KubeStore.open({ kubeconfig: api.kubeconfigPath }, silentLogger())
    t.teardown(() => store.close())
    await store.nodes.putSpec(NODE, { topology: { 'topology.tscsi.dev/node': NODE }, maxVolumes: 0, kinds: ['dir'], pools: ['default'] })
    await store.nodes.putStatus(NODE, { pools: { default: { totalBytes: String(2 ** 40), availableBytes: String(2 ** 40) } }, updatedAt: new Date().toISOString() })

    /** Starts a controller, waits until it lists `want` volumes, idles, changes statuses; stops it. */
    const measure = async (label: string, want: number): Promise<void> => {
      const procs: Proc[] = []
      const t0 = Date.now()
      const ctl = await start('controller', path.join(dir, label.replace(/ /g, '-')), ['--store', 'kubernetes', '--kubeconfig', api.kubeconfigPath], NODE_FLAGS)
      procs.push(ctl)
      const c = client('Controller', ctl.socket)
      try {
        const pid = ctl.child.pid!
        let listed = -1
        while (listed < want) {
          listed = (await c.ListVolumes({}, 120_000)).entries.length
          if (listed < want) await sleep(100)
        }
        const readyMs = Date.now() - t0
        const cpuReady = cpuSeconds(pid)
        const l0 = process.hrtime.bigint()
        await c.ListVolumes({}, 120_000)
        const listMs = Number(process.hrtime.bigint() - l0) / 1e6
        await sleep(IDLE_MS)
        const cpuIdle = cpuSeconds(pid) - cpuReady
        const rss = rssMiB(pid)
        t.comment(`${label}: serves all ${want} volumes ${readyMs} ms after start, having used ${cpuReady.toFixed(2)} s of CPU; ` +
          `a full ListVolumes takes ${listMs.toFixed(1)} ms; idle for ${IDLE_MS / 1000} s it uses ${(100 * cpuIdle / (IDLE_MS / 1000)).toFixed(2)}% of a core; RSS ${rss.toFixed(1)} MiB (${await heapOf(ctl.socket)})`)
        if (want > 0) {
          // Watch events: every volume's status rewritten once, as a node plugin's restart would.
          const before = cpuSeconds(pid)
          const w0 = Date.now()
          const ids = Array.from({ length: want }, (_, i) => volumeIdFor(`pvc-bench-${i}`))
          await pool(ids, 16, (id) => store.volumes.putStatus(id, { phase: 'Ready', observedGeneration: 1, updatedAt: new Date().toISOString() }))
          const writeS = (Date.now() - w0) / 1000
          await sleep(2000)
          const used = cpuSeconds(pid) - before
          t.comment(`${label}: ${want} status changes written in ${writeS.toFixed(1)} s cost the controller ${used.toFixed(2)} s of CPU ` +
            `(${(1000 * used / want).toFixed(3)} ms per watch event); RSS after ${rssMiB(pid).toFixed(1)} MiB (${await heapOf(ctl.socket)})`)
        }
        t.pass(label)
      } finally {
        c.close()
        for (const p of procs) p.child.kill('SIGKILL')
        await Promise.all(procs.map((p) => p.exited))
      }
    }

    await measure('0 volumes', 0)
    const w0 = Date.now()
    await pool(Array.from({ length: OBJECTS }, (_, i) => i), 16, async (i) => {
      const id = volumeIdFor(`pvc-bench-${i}`)
      await store.volumes.create(id, spec(i))
      await store.volumes.putStatus(id, { phase: 'Ready', observedGeneration: 1, updatedAt: new Date().toISOString() })
    })
    t.comment(`wrote ${OBJECTS} TscsiVolumes (spec and status) in ${((Date.now() - w0) / 1000).toFixed(1)} s, 16 at a time`)
    await measure(`${OBJECTS} volumes`, OBJECTS)
  })
}
