// Provisioning at cluster scale (issue 17), against the driver as the Helm chart installs it, with
// the sidecar flags the chart ships: 500 claims with Immediate binding created at once, then 100
// pods each with its own WaitForFirstConsumer claim on the one node, then everything deleted.
//
// The issue's limits (all Bound in 60 s, all Running in 120 s) are the benchmark's: they are
// printed, never asserted, because this machine is shared and emulates nothing faster than it
// is. What fails the run is correctness: every claim Bound, every pod Running, and after the
// deletes the pool's free space, the TscsiVolume objects, the data root's folders and images and
// the loop devices back where they started.
//
// Where the time goes is read from counters, not guessed: the API server's request counts by
// resource and verb (its /metrics), and the tscsi controller's own (CreateVolume and DeleteVolume
// server time, and how much of it was the wait for the node plugin).
import t, { type Test } from 'tap'
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs'
import path from 'node:path'
import {
  CONTROLLER_METRICS_PORT, DATA_ROOT, dataRootLoops, driverPods, env, kubectl, kubectlTry, namespace, pod, pvc, waitFor,
} from './lib.js'

const CLAIMS = Number(process.env['E2E_SCALE_CLAIMS'] ?? 500)
const PODS = Number(process.env['E2E_SCALE_PODS'] ?? 100)
const IMMEDIATE = 'tscsi-e2e-scale-immediate'
// Deadlines for correctness only, far past the issue's limits: a run this slow is broken.
const BIND_DEADLINE = 900_000
const RUN_DEADLINE = 1_200_000

type Counts = Map<string, number>

/** Sums of a Prometheus text exposition's samples of one metric, keyed by the chosen labels. */
function sums(text: string, metric: string, labels: string[]): Counts {
  const out: Counts = new Map()
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue
    const m = /^([a-z_:]+)(?:\{([^}]*)\})? ([0-9.e+-]+|NaN)$/.exec(line)
    if (!m || m[1] !== metric) continue
    const l = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
    const key = labels.map((k) => l[k] ?? '').join(' ')
    out.set(key, (out.get(key) ?? 0) + Number(m[3]))
  }
  return out
}

const diff = (after: Counts, before: Counts): Counts =>
  new Map([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, v]) => v > 0))

const apiRequests = (): Counts => sums(kubectl(['get', '--raw', '/metrics']), 'apiserver_request_total', ['resource', 'verb'])

/** Every controller replica's metrics (the provisioner of the leader's pod calls its own replica). */
async function controllerMetrics(): Promise<string> {
  const pods = driverPods('controller').filter((x) => !x.metadata.deletionTimestamp && x.status?.podIP)
  const texts = await Promise.all(pods.map(async (p) =>
    (await fetch(`http://${p.status.podIP}:${CONTROLLER_METRICS_PORT}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()))
  return texts.join('\n')
}

/** CreateVolume/DeleteVolume served (count, seconds) and the part spent waiting for the node. */
async function controllerTime(): Promise<{ rpc: Counts; rpcCount: Counts; realise: Counts; ledger: Counts }> {
  const text = await controllerMetrics()
  const one = (metric: string): [string, number] => [metric, sums(text, metric, []).get('') ?? 0]
  return {
    rpc: sums(text, 'tscsi_rpc_duration_seconds_sum', ['method']),
    rpcCount: sums(text, 'tscsi_rpc_duration_seconds_count', ['method']),
    realise: sums(text, 'tscsi_controller_realise_duration_seconds_sum', ['operation']),
    ledger: new Map([one('tscsi_controller_ledger_commit_operations_sum'), one('tscsi_controller_ledger_commit_operations_count'), one('tscsi_controller_ledger_writes_total')]),
  }
}

const KCM_LOG = path.join(env.RUN, 'logs/kube-controller-manager.log')
const kcmLogSize = (): number => (existsSync(KCM_LOG) ? readFileSync(KCM_LOG).length : 0)

/**
 * kube-controller-manager's own client-side rate limiting since a log offset: its clients (the
 * PersistentVolume binder among them) default to 20 requests/s, and log each wait they sit out.
 */
function kcmThrottling(from: number): string {
  if (!existsSync(KCM_LOG)) return 'no kube-controller-manager log'
  const waits = [...readFileSync(KCM_LOG).subarray(from).toString('utf8').matchAll(/Waited for ([0-9.]+)(ms|s) due to client-side throttling/g)]
    .map((m) => Number(m[1]) * (m[2] === 'ms' ? 1 : 1000))
  if (waits.length === 0) return 'kube-controller-manager logged no client-side throttling'
  return `kube-controller-manager logged ${waits.length} client-side throttling waits, the longest ${(Math.max(...waits) / 1000).toFixed(1)} s`
}

/** Seconds from `started` to the newest creation of the claims' PersistentVolumes (second resolution). */
function lastPvCreated(ns: string, started: number): number {
  const made = JSON.parse(kubectl(['get', 'pv', '-o', 'json'])).items
    .filter((pv: any) => pv.spec.claimRef?.namespace === ns).map((pv: any) => Date.parse(pv.metadata.creationTimestamp))
  return (Math.max(...made) - started) / 1000
}

const poolFree = (): bigint => { const s = statfsSync(DATA_ROOT, { bigint: true }); return s.bavail * s.bsize }
const entries = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : [])
const tscsiVolumes = (): string[] => JSON.parse(kubectl(['get', 'tscsivolumes', '-o', 'json'])).items.map((o: any) => o.metadata.name).sort()

interface Baseline { free: bigint; volumes: string[]; dirs: string[]; images: string[]; loops: string[] }

/** The pool's free space once it holds still (an earlier scenario's deletes may still be settling). */
async function steadyBaseline(): Promise<Baseline> {
  let last = -1n
  await waitFor('the pool\'s free space holds still for 3 s', async () => {
    const now = poolFree()
    const same = now === last
    last = now
    if (!same) await new Promise((r) => setTimeout(r, 2000))
    return same
  }, 120_000)
  return { free: last, volumes: tscsiVolumes(), dirs: entries(path.join(DATA_ROOT, 'volumes')), images: entries(path.join(DATA_ROOT, 'images')), loops: dataRootLoops() }
}

/** Polls once a second until count() reaches want; the seconds it took. */
async function timeUntil(what: string, want: number, count: () => number, deadlineMs: number): Promise<number> {
  const started = Date.now()
  let seen = 0
  await waitFor(`${what} (${want})`, () => { seen = count(); return seen >= want }, deadlineMs).catch((e: Error) => {
    throw new Error(`${e.message}; ${seen} of ${want} after ${Math.round((Date.now() - started) / 1000)} s`)
  })
  return (Date.now() - started) / 1000
}

const claimsIn = (ns: string): any[] => JSON.parse(kubectlTry(['get', 'pvc', '-n', ns, '-o', 'json'], undefined, 120_000).stdout || '{"items":[]}').items
const podsIn = (ns: string): any[] => JSON.parse(kubectlTry(['get', 'pods', '-n', ns, '-o', 'json'], undefined, 120_000).stdout || '{"items":[]}').items
const many = (n: number, make: (i: number) => string): string => Array.from({ length: n }, (_, i) => make(i)).join('\n---\n')

/** `kubectl create` of many objects: one request each (apply would read each first), given minutes. */
function createAll(ns: string, yaml: string): void {
  const r = kubectlTry(['create', '-n', ns, '-f', '-'], yaml, 600_000)
  if (r.code !== 0) throw new Error(`kubectl create failed (${r.code}): ${r.stderr.trim().slice(0, 500)}`)
}

function report(t: Test, title: string, api: Counts, per: number): void {
  const rows = [...api].sort((a, b) => b[1] - a[1])
  const total = rows.reduce((s, [, v]) => s + v, 0)
  t.comment(`${title}: ${total} API requests in all, ${(total / per).toFixed(1)} per volume; by resource and verb:`)
  for (const [k, v] of rows.slice(0, 14)) t.comment(`  ${k.padEnd(40)} ${String(v).padStart(6)}  (${(v / per).toFixed(2)} per volume)`)
}

function timeReport(t: Test, before: Awaited<ReturnType<typeof controllerTime>>, after: Awaited<ReturnType<typeof controllerTime>>, wallSeconds: number): void {
  for (const method of ['CreateVolume', 'DeleteVolume']) {
    const n = (after.rpcCount.get(method) ?? 0) - (before.rpcCount.get(method) ?? 0)
    const s = (after.rpc.get(method) ?? 0) - (before.rpc.get(method) ?? 0)
    const op = method === 'CreateVolume' ? 'create' : 'delete'
    const node = (after.realise.get(op) ?? 0) - (before.realise.get(op) ?? 0)
    if (n > 0) {
      t.comment(`tscsi controller: ${n} ${method} calls, ${(1000 * s / n).toFixed(1)} ms each on average (of which ${(1000 * node / n).toFixed(1)} ms waiting for the node plugin); ` +
        `${s.toFixed(1)} s of server time in a ${wallSeconds.toFixed(1)} s window`)
    }
  }
  const delta = (k: string): number => (after.ledger.get(k) ?? 0) - (before.ledger.get(k) ?? 0)
  const commits = delta('tscsi_controller_ledger_commit_operations_count')
  if (commits > 0) {
    t.comment(`tscsi controller: ${delta('tscsi_controller_ledger_commit_operations_sum')} claims and releases in ${commits} group commits, ` +
      `${delta('tscsi_controller_ledger_writes_total')} ledger writes`)
  }
}

t.test(`${CLAIMS} claims with Immediate binding, created at once, then deleted`, async (t) => {
  const base = await steadyBaseline()
  const ns = await namespace(t, 'e2e-scale-claims')
  kubectl(['apply', '-f', '-'], `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: ${IMMEDIATE} }
provisioner: local.tscsi.dev
parameters: { kind: dir }
reclaimPolicy: Delete
volumeBindingMode: Immediate
`)
  t.teardown(() => { kubectlTry(['delete', 'storageclass', IMMEDIATE]) })
  const api0 = apiRequests()
  const ctl0 = await controllerTime()
  const kcm0 = kcmLogSize()
  const started = Date.now()
  createAll(ns, many(CLAIMS, (i) => pvc(`claim-${i}`, IMMEDIATE, '1Mi')))
  const applied = (Date.now() - started) / 1000
  // The pipeline, every 10 s: kube-controller-manager's PersistentVolume controller marks each
  // claim for the external provisioner (an annotation), the provisioner (through tscsi) makes its
  // PersistentVolume, and the PV controller binds the two.
  let nextReport = Date.now() + 10_000
  const bound = applied + await timeUntil('claims Bound', CLAIMS, () => {
    const claims = claimsIn(ns)
    const n = claims.filter((c) => c.status?.phase === 'Bound').length
    if (Date.now() >= nextReport) {
      nextReport += 10_000
      const marked = claims.filter((c) => c.metadata.annotations?.['volume.kubernetes.io/storage-provisioner']).length
      const pvs = JSON.parse(kubectl(['get', 'pv', '-o', 'json'])).items.filter((pv: any) => pv.spec.claimRef?.namespace === ns).length
      t.comment(`at ${((Date.now() - started) / 1000).toFixed(0)} s: ${claims.length} claims exist, ${marked} marked for the provisioner, ${pvs} PersistentVolumes made, ${n} Bound`)
    }
    return n
  }, BIND_DEADLINE)
  t.equal(claimsIn(ns).filter((c) => c.status?.phase === 'Bound').length, CLAIMS, `all ${CLAIMS} claims Bound`)
  t.comment(`BENCH all ${CLAIMS} claims Bound ${bound.toFixed(1)} s after the create began (kubectl create itself took ${applied.toFixed(1)} s); the issue's limit is 60 s: ${bound <= 60 ? 'PASS' : 'MISS'}`)
  // Where the time went: provisioning (external-provisioner and tscsi) ends when the last
  // PersistentVolume is created; binding it to its claim is kube-controller-manager's work.
  const provisioned = lastPvCreated(ns, started)
  t.comment(`BENCH the last of the ${CLAIMS} PersistentVolumes was created ${provisioned.toFixed(0)} s after the create began (provisioning, to 1 s); ` +
    `binding took the other ${(bound - provisioned).toFixed(0)} s; ${kcmThrottling(kcm0)}`)
  const ctl1 = await controllerTime()
  timeReport(t, ctl0, ctl1, bound)
  t.equal(tscsiVolumes().length, base.volumes.length + CLAIMS, `${CLAIMS} more TscsiVolume objects`)

  const delStarted = Date.now()
  kubectl(['delete', 'pvc', '--all', '-n', ns, '--wait=false'])
  const gone = await timeUntil('TscsiVolumes gone', 1, () => (tscsiVolumes().length === base.volumes.length ? 1 : 0), BIND_DEADLINE)
  t.comment(`BENCH deleting the ${CLAIMS} claims: their TscsiVolumes were gone after ${gone.toFixed(1)} s`)
  const pvsGone = gone + await timeUntil('the claims\' PersistentVolumes gone', 1,
    () => (JSON.parse(kubectl(['get', 'pv', '-o', 'json'])).items.some((pv: any) => pv.spec.claimRef?.namespace === ns) ? 0 : 1), BIND_DEADLINE)
  t.comment(`BENCH and their PersistentVolumes after ${pvsGone.toFixed(1)} s`)
  timeReport(t, ctl1, await controllerTime(), (Date.now() - delStarted) / 1000)
  report(t, `one Immediate claim's lifecycle (create, bind, delete; the test's own polling included)`, diff(apiRequests(), api0), CLAIMS)
  await leftovers(t, base)
})

t.test(`${PODS} pods, each with its own WaitForFirstConsumer claim, on the one node`, async (t) => {
  const base = await steadyBaseline()
  const ns = await namespace(t, 'e2e-scale-pods')
  const started = Date.now()
  createAll(ns, many(PODS, (i) => `${pvc(`data-${i}`, 'tscsi-dir', '1Mi')}\n---\n${pod(`app-${i}`, 'echo ok > /data/ok',
    `- name: data\n  persistentVolumeClaim: { claimName: data-${i} }`, 'volumeMounts: [{ name: data, mountPath: /data }]')}`))
  const running = await timeUntil('pods Running', PODS, () => podsIn(ns).filter((p) => p.status?.phase === 'Running').length, RUN_DEADLINE)
  const total = (Date.now() - started) / 1000
  t.equal(podsIn(ns).filter((p) => p.status?.phase === 'Running').length, PODS, `all ${PODS} pods Running`)
  t.comment(`BENCH all ${PODS} pods Running ${total.toFixed(1)} s after the create began (${running.toFixed(1)} s after kubectl returned); the issue's limit is 120 s: ${total <= 120 ? 'PASS' : 'MISS'}`)
  t.equal(claimsIn(ns).filter((c) => c.status?.phase === 'Bound').length, PODS, `all ${PODS} claims Bound`)

  const delStarted = Date.now()
  kubectl(['delete', 'pod', '--all', '-n', ns, '--wait=false'])
  await waitFor('the pods gone', () => podsIn(ns).length === 0, 600_000)
  kubectl(['delete', 'pvc', '--all', '-n', ns, '--wait=false'])
  await waitFor('their TscsiVolumes gone', () => tscsiVolumes().length === base.volumes.length, 600_000)
  t.comment(`BENCH deleting the ${PODS} pods and their claims took ${((Date.now() - delStarted) / 1000).toFixed(1)} s`)
  await leftovers(t, base)
})

/** Everything the scenario made is gone: objects, folders, images, loop devices, and the space. */
async function leftovers(t: Test, base: Baseline): Promise<void> {
  t.same(tscsiVolumes(), base.volumes, 'no TscsiVolume left')
  t.same(entries(path.join(DATA_ROOT, 'volumes')), base.dirs, 'no volume folder left in the data root')
  t.same(entries(path.join(DATA_ROOT, 'images')), base.images, 'no image left')
  t.same(dataRootLoops(), base.loops, 'no loop device left')
  // A directory's blocks come back as the node removes it; ext4 may hand the last ones back a
  // moment later (the disk-full test met this), so the check waits for them rather than racing.
  const free = await waitFor('the pool\'s free space back at its baseline', () => {
    const now = poolFree()
    return now >= base.free && now
  }, 120_000).catch(() => poolFree())
  t.ok(free >= base.free, `the pool has its ${base.free} bytes free again (${free})`)
}
