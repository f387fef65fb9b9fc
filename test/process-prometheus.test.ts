// End to end, as root: the real node plugin (and controller) processes, the built sidecar process
// and a real Prometheus scraping it on 127.0.0.1.
import t from 'tap'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { client, mountCap, ROOT, start, testRig } from './helpers/driver.js'
import { haveTools, promtool, startPrometheus, startSidecar, type Prometheus, type Sidecar } from './helpers/prometheus.js'

type TT = Parameters<Parameters<typeof t.test>[0]>[0]

async function get(sc: Sidecar, p: string): Promise<{ status: number; body: string; ms: number }> {
  const started = Date.now()
  const res = await fetch(sc.url + p)
  return { status: res.status, body: await res.text(), ms: Date.now() - started }
}

/** Inodes of the TCP sockets in LISTEN state in this network namespace. */
function tcpListeners(): Set<string> {
  const out = new Set<string>()
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols[3] === '0A' && cols[9]) out.add(cols[9])
    }
  }
  return out
}

function socketInodes(pid: number): string[] {
  const fds = path.join('/proc', String(pid), 'fd')
  return readdirSync(fds).flatMap((fd) => {
    try {
      return [/^socket:\[(\d+)\]$/.exec(readlinkSync(path.join(fds, fd)))?.[1] ?? ''].filter(Boolean)
    } catch {
      return []
    }
  })
}

const listensOnTcp = (pid: number): boolean => socketInodes(pid).some((i) => tcpListeners().has(i))

/** A scrape of the sidecar must satisfy `promtool check metrics`, which prints nothing when it does. */
async function promtoolClean(t: TT, sc: Sidecar, what: string): Promise<void> {
  const scrape = await get(sc, '/metrics')
  t.equal(scrape.status, 200)
  const lint = await promtool(['check', 'metrics'], scrape.body)
  t.equal(lint.stdout + lint.stderr, '', `promtool check metrics finds nothing in the ${what} scrape`)
  t.equal(lint.code, 0)
}

const value = (r: { value: [number, string] }[]): number => (r.length === 1 ? Number(r[0]!.value[1]) : NaN)

if (process.getuid?.() !== 0) {
  t.skip('metrics end-to-end tests start the node plugin, which needs root', () => {})
} else {
  t.test('/healthz follows a frozen node plugin: 200, 500 naming the timeout while SIGSTOPped, 200 after SIGCONT', async (t) => {
    const rig = testRig(t)
    const node = await start('node', rig.dir)
    rig.procs.push(node)
    const sc = await startSidecar(t, ['--csi-address', node.socket, '--probe-timeout', '1s'])

    let res = await get(sc, '/healthz')
    t.same([res.status, res.body], [200, 'ok'], 'healthy driver: 200 ok')

    const pid = node.child.pid!
    process.kill(pid, 'SIGSTOP')
    try {
      for (const attempt of [1, 2]) {
        res = await get(sc, '/healthz')
        t.equal(res.status, 500, `frozen driver, probe ${attempt}: 500 (after ${res.ms} ms)`)
        t.match(res.body, /^Identity\.Probe timed out: no answer within --probe-timeout 1s \(DEADLINE_EXCEEDED/, 'the body names the timeout')
      }
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    let tries = 0
    const until = Date.now() + 10_000
    for (;;) {
      tries++
      res = await get(sc, '/healthz')
      if (res.status === 200 || Date.now() > until) break
      await new Promise((r) => setTimeout(r, 100))
    }
    t.same([res.status, res.body], [200, 'ok'], `resumed driver: 200 ok again (probe ${tries} after SIGCONT)`)

    const scrape = (await get(sc, '/metrics')).body
    t.match(scrape, /^tscsi_sidecar_probe_failures_total\{reason="timeout"\} 2$/m, 'both timeouts counted')

    t.ok(listensOnTcp(sc.child.pid!), 'the check sees TCP listeners (the sidecar has one)')
    t.notOk(listensOnTcp(pid), 'the node plugin listens on no TCP port')

    sc.child.kill('SIGTERM')
    t.equal(await sc.exited, 0, 'the sidecar exits 0 on SIGTERM')
  })

  t.test('a real Prometheus scrapes the sidecar; promtool finds nothing wrong with the scrape', async (t) => {
    if (!haveTools(t)) return
    const rig = testRig(t)
    const node = await start('node', rig.dir)
    rig.procs.push(node)
    const sc = await startSidecar(t, ['--csi-address', `unix://${node.socket}`, '--probe-timeout', '1s'])
    const prom = await startPrometheus(t, path.join(rig.dir, 'prometheus'), [{ hostPort: sc.hostPort, labels: { sidecar: 'node' } }])

    await prom.waitFor('up{job="tscsi-sidecar"}', (r) => value(r) === 1)
    const failures = await prom.waitFor('tscsi_sidecar_probe_failures_total', (r) => r.length === 3)
    t.same(failures.map((s) => s.metric['reason']).sort(), ['error', 'not_ready', 'timeout'], 'the failure counter is scraped with its three reasons')

    const probes = 4
    for (let i = 0; i < probes; i++) t.equal((await get(sc, '/healthz')).status, 200)
    await prom.waitFor('sum(tscsi_sidecar_probe_duration_seconds_count)', (r) => value(r) === probes)
    t.pass(`PromQL counts the ${probes} probes`)
    t.equal(value(await prom.query('sum(tscsi_sidecar_probe_failures_total)')), 0, 'and no failures')

    await promtoolClean(t, sc, 'node sidecar')
    await checkRulesAndDashboard(t, prom)
  })

  t.test('PromQL counts the CreateVolume calls the controller served', async (t) => {
    if (!haveTools(t)) return
    const rig = testRig(t)
    const ctl = await start('controller', rig.dir)
    const node = await start('node', rig.dir)
    rig.procs.push(ctl, node)
    const ctlSidecar = await startSidecar(t, ['--csi-address', ctl.socket, '--probe-timeout', '1s'])
    const nodeSidecar = await startSidecar(t, ['--csi-address', node.socket, '--probe-timeout', '1s'])
    const prom = await startPrometheus(t, path.join(rig.dir, 'prometheus'), [
      { hostPort: ctlSidecar.hostPort, labels: { sidecar: 'controller' } },
      { hostPort: nodeSidecar.hostPort, labels: { sidecar: 'node' } },
    ])

    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const n = 5
    for (let i = 0; i < n; i++) {
      await c.CreateVolume({ name: `pvc-metrics-${i}`, volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(16 << 20) } })
    }
    const total = await prom.waitFor('sum(tscsi_rpc_total{method="CreateVolume"})', (r) => value(r) === n)
    t.equal(value(total), n, `sum(tscsi_rpc_total{method="CreateVolume"}) == ${n}`)
    const ok = await prom.waitFor('sum(tscsi_rpc_total{method="CreateVolume",code="OK",service="Controller"})', (r) => value(r) === n)
    t.equal(value(ok), n, 'all of them OK, counted under service Controller')
    const timed = await prom.waitFor('sum(tscsi_rpc_duration_seconds_count{method="CreateVolume"})', (r) => value(r) === n)
    t.equal(value(timed), n, 'and each one timed in the latency histogram')
    const up = await prom.waitFor('tscsi_sidecar_driver_metrics_up', (r) => r.length === 2 && r.every((s) => s.value[1] === '1'))
    t.equal(up.length, 2, "both sidecars relay their driver's metrics")

    await promtoolClean(t, ctlSidecar, 'controller sidecar')
    await promtoolClean(t, nodeSidecar, 'node sidecar')
    t.notOk(listensOnTcp(node.child.pid!), 'the node plugin still listens on no TCP port')
    await checkRulesAndDashboard(t, prom)
  })
}

/** The alert rules load in the real Prometheus and evaluate cleanly; every dashboard query runs. */
async function checkRulesAndDashboard(t: TT, prom: Prometheus): Promise<void> {
  const rules = (await prom.get('/api/v1/rules')) as { groups: { rules: { name: string; health: string; lastError?: string }[] }[] }
  const loaded = rules.groups.flatMap((g) => g.rules)
  t.equal(loaded.length, 5, 'Prometheus loaded the five alert rules')
  for (const r of loaded) t.not(r.health, 'err', `${r.name} evaluates${r.lastError ? `: ${r.lastError}` : ''}`)
  const dash = JSON.parse(readFileSync(path.join(ROOT, 'deploy/monitoring/grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] }
  for (const p of dash.panels) {
    for (const target of p.targets ?? []) {
      const expr = target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*').replaceAll('$component', '.*')
      await t.resolves(prom.query(expr), `dashboard panel "${p.title}" runs`)
    }
  }
}
