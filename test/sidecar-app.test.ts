// The sidecar app through inject(), against an in-process gRPC Identity server whose Probe the
// test controls and a fake driver metrics socket. No port, no root. The last tests run the built
// sidecar process itself.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import http from 'node:http'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import path from 'node:path'
import { csiPackage } from '../common/grpc.js'
import { silentLogger } from '../common/log.js'
import { buildMetricsApp, type MetricsApp, type MetricsAppOptions } from '../sidecar/app.js'
import { haveTools, promtool, startSidecar, SIDECAR_MAIN } from './helpers/prometheus.js'

type TT = Parameters<Parameters<typeof t.test>[0]>[0]
type Mode = 'ready' | 'unset' | 'not-ready' | 'throws' | 'hangs'

/** A unix socket folder short enough for sun_path (test folders are deep), removed afterwards. */
function socketDir(t: TT): string {
  const dir = mkdtempSync('/tmp/tscsi-mt-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface FakeIdentity {
  socket: string
  mode: Mode
  calls: number
  start(): Promise<void>
}

/** An Identity service whose Probe answers as `mode` says; `hangs` never answers. */
function fakeIdentity(t: TT, socket: string, mode: Mode = 'ready'): FakeIdentity {
  const server = new grpc.Server()
  const fake: FakeIdentity = {
    socket,
    mode,
    calls: 0,
    start: () => new Promise((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()))),
  }
  server.addService(csiPackage().Identity.service, {
    Probe: (_call: unknown, cb: grpc.sendUnaryData<object>) => {
      fake.calls++
      if (fake.mode === 'ready') cb(null, { ready: { value: true } })
      else if (fake.mode === 'unset') cb(null, {})
      else if (fake.mode === 'not-ready') cb(null, { ready: { value: false } })
      else if (fake.mode === 'throws') cb({ code: grpc.status.FAILED_PRECONDITION, details: 'data root\nis gone' })
    },
  })
  t.teardown(() => server.forceShutdown())
  return fake
}

/** The driver's side of the metrics socket: plain HTTP on a unix socket. */
async function fakeDriverMetrics(t: TT, socket: string, handler: http.RequestListener): Promise<void> {
  const server = http.createServer(handler)
  await new Promise<void>((r) => server.listen(socket, r))
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
}

const DRIVER_TEXT = [
  '# HELP tscsi_rpc_total CSI calls by service, method and gRPC code.',
  '# TYPE tscsi_rpc_total counter',
  'tscsi_rpc_total{service="Controller",method="CreateVolume",code="OK"} 3',
  '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.',
  '# TYPE process_cpu_seconds_total counter',
  'process_cpu_seconds_total 1.5',
  // A family the sidecar writes itself must not appear twice in one scrape.
  '# HELP tscsi_sidecar_driver_metrics_up impostor',
  '# TYPE tscsi_sidecar_driver_metrics_up gauge',
  'tscsi_sidecar_driver_metrics_up 7',
  '# EOF',
].join('\n')

async function app(t: TT, opts: Partial<MetricsAppOptions> & { csiTarget: string }): Promise<MetricsApp> {
  const a = buildMetricsApp({ probeTimeoutMs: 300, logger: silentLogger(), ...opts })
  t.teardown(() => a.close())
  await a.ready()
  return a
}

async function sample(a: MetricsApp, name: string, labels = ''): Promise<number | undefined> {
  const text = (await a.inject({ url: '/metrics' })).body
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

t.test('/healthz answers as livenessprobe: 200 ok when ready or when ready is unset, else 500 with the reason', async (t) => {
  const dir = socketDir(t)
  const id = fakeIdentity(t, path.join(dir, 'csi.sock'))
  await id.start()
  const a = await app(t, { csiTarget: `unix://${id.socket}` })

  for (const mode of ['ready', 'unset'] as const) {
    id.mode = mode
    const res = await a.inject({ url: '/healthz' })
    t.equal(res.statusCode, 200, `${mode}: 200`)
    t.equal(res.body, 'ok', `${mode}: body ok`)
    t.match(res.headers['content-type'], /^text\/plain/)
  }
  id.mode = 'not-ready'
  let res = await a.inject({ url: '/healthz' })
  t.equal(res.statusCode, 500, 'ready false: 500')
  t.equal(res.body, 'driver responded but is not ready', "livenessprobe's words")

  id.mode = 'throws'
  res = await a.inject({ url: '/healthz' })
  t.equal(res.statusCode, 500, 'a failed call: 500')
  t.equal(res.body, 'Identity.Probe failed: FAILED_PRECONDITION: data root is gone', 'names the code and the driver\'s message on one line')

  id.mode = 'hangs'
  res = await a.inject({ url: '/healthz' })
  t.equal(res.statusCode, 500, 'a driver that never answers: 500')
  t.match(res.body, /^Identity\.Probe timed out: no answer within --probe-timeout 300ms \(DEADLINE_EXCEEDED: [^\n]*\)$/, 'the body names the timeout')

  id.mode = 'ready'
  res = await a.inject({ url: '/healthz' })
  t.equal(res.statusCode, 200, 'the same channel serves the next probe once the driver answers again')
  t.equal(id.calls, 6, 'one Probe call per /healthz')

  const m = a.sidecarMetrics
  t.equal(await sample(a, 'tscsi_sidecar_probe_failures_total', '{reason="not_ready"}'), 1)
  t.equal(await sample(a, 'tscsi_sidecar_probe_failures_total', '{reason="error"}'), 1)
  t.equal(await sample(a, 'tscsi_sidecar_probe_failures_total', '{reason="timeout"}'), 1)
  t.equal(await sample(a, 'tscsi_sidecar_probe_duration_seconds_count'), 6, 'every probe is timed, failed ones too')
  const sum = (await m.probeDuration.get()).values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0
  t.ok(sum >= 0.3, `the hung call's wait is in the histogram (sum ${sum}s)`)
})

t.test('a driver that is not there yet: 500 naming the socket, then 200 soon after it starts', async (t) => {
  const dir = socketDir(t)
  const id = fakeIdentity(t, path.join(dir, 'csi.sock'))
  const a = await app(t, { csiTarget: `unix://${id.socket}` })
  const res = await a.inject({ url: '/healthz' })
  t.equal(res.statusCode, 500)
  t.match(res.body, /^Identity\.Probe failed: UNAVAILABLE: .*ENOENT/)
  t.notMatch(res.body, /\n/, 'one line')

  await id.start()
  // grpc-js would back off up to 120 s between reconnects by default; the sidecar caps it at 1 s.
  const deadline = Date.now() + 5000
  let status = 0
  while (Date.now() < deadline && status !== 200) {
    status = (await a.inject({ url: '/healthz' })).statusCode
    if (status !== 200) await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(status, 200, 'healthy within a few reconnect attempts')
})

t.test("/metrics: the sidecar's own metrics, then the driver's relayed", async (t) => {
  const dir = socketDir(t)
  const metricsSocket = path.join(dir, 'csi-metrics.sock')
  let answer: 'text' | 'error' | 'hang' = 'text'
  let requests = 0
  await fakeDriverMetrics(t, metricsSocket, (req, res) => {
    requests++
    if (req.url !== '/metrics') return void res.writeHead(404).end()
    if (answer === 'text') res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(DRIVER_TEXT)
    else if (answer === 'error') res.writeHead(500).end('boom')
  })
  const a = await app(t, { csiTarget: `unix://${path.join(dir, 'csi.sock')}`, driverMetricsSocket: metricsSocket })

  let res = await a.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const body = res.body
  for (const name of ['tscsi_sidecar_probe_duration_seconds', 'tscsi_sidecar_probe_failures_total', 'tscsi_sidecar_driver_metrics_up']) {
    t.match(body, new RegExp(`^# HELP ${name} `, 'm'), `${name} has help text`)
  }
  t.match(body, /^# TYPE tscsi_sidecar_probe_duration_seconds histogram$/m)
  t.match(body, /^tscsi_sidecar_driver_metrics_up 1$/m, 'driver_metrics_up 1')
  t.match(body, /^tscsi_sidecar_probe_failures_total\{reason="timeout"\} 0$/m, 'failure series exist before any failure')
  t.match(body, /^tscsi_sidecar_process_cpu_seconds_total /m, "prom-client's process metrics carry the sidecar's prefix")
  t.match(body, /^tscsi_sidecar_nodejs_eventloop_lag_seconds /m)
  t.ok(body.indexOf('tscsi_sidecar_probe_duration_seconds') < body.indexOf('tscsi_rpc_total'), 'own metrics first')
  t.match(body, /^tscsi_rpc_total\{service="Controller",method="CreateVolume",code="OK"\} 3$/m, "the driver's samples are relayed")
  t.match(body, /^process_cpu_seconds_total 1\.5$/m, "the driver's process metrics keep their names")
  t.equal(body.match(/^process_cpu_seconds_total /gm)?.length, 1, 'only the driver writes unprefixed process metrics')
  t.notMatch(body, /impostor|driver_metrics_up 7/, "a driver family with one of the sidecar's names is dropped")
  t.notMatch(body, /# EOF/, 'an OpenMetrics terminator is not relayed into the middle of nowhere')
  t.ok(body.endsWith('\n'))
  t.equal(requests, 1)

  answer = 'error'
  res = await a.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200, 'a driver answering 500 still gives a scrape')
  t.match(res.body, /^tscsi_sidecar_driver_metrics_up 0$/m)
  t.notMatch(res.body, /tscsi_rpc_total/)

  answer = 'hang'
  res = await a.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200, 'so does a driver that never answers (after the probe timeout)')
  t.match(res.body, /^tscsi_sidecar_driver_metrics_up 0$/m)

  answer = 'text'
  t.match((await a.inject({ url: '/metrics' })).body, /^tscsi_sidecar_driver_metrics_up 1$/m, 'and back to 1')
})

t.test('/metrics without a driver metrics socket, and with another path', async (t) => {
  const dir = socketDir(t)
  const missing = await app(t, { csiTarget: `unix://${path.join(dir, 'csi.sock')}`, driverMetricsSocket: path.join(dir, 'nope.sock') })
  let res = await missing.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200, 'an unreachable driver socket still answers 200')
  t.match(res.body, /^tscsi_sidecar_driver_metrics_up 0$/m)

  const none = await app(t, { csiTarget: '127.0.0.1:1', metricsPath: '/custom', defaultMetrics: false })
  res = await none.inject({ url: '/custom' })
  t.equal(res.statusCode, 200, '--metrics-path moves the endpoint')
  t.match(res.body, /^tscsi_sidecar_driver_metrics_up 0$/m, 'no socket configured: up 0')
  t.notMatch(res.body, /process_cpu/, 'default metrics can be left out')
  t.equal((await none.inject({ url: '/metrics' })).statusCode, 404)
})

t.test("promtool check metrics finds nothing in the sidecar's own metrics", async (t) => {
  if (!haveTools(t)) return
  const a = await app(t, { csiTarget: '127.0.0.1:1' })
  await a.inject({ url: '/healthz' })
  const lint = await promtool(['check', 'metrics'], (await a.inject({ url: '/metrics' })).body)
  t.equal(lint.stdout + lint.stderr, '', 'no findings (prom-client\'s gauges named *_total are left out)')
  t.equal(lint.code, 0)
})

const built = existsSync(SIDECAR_MAIN)
t.test('the sidecar process: livenessprobe flags, JSON logs, clean SIGTERM', { skip: built ? false : 'dist/sidecar/main.js is missing: run `npm run build` first' }, async (t) => {
  const dir = socketDir(t)
  const id = fakeIdentity(t, path.join(dir, 'csi.sock'))
  await id.start()
  const sc = await startSidecar(t, ['-csi-address', id.socket, '--probe-timeout=1s', '-v=5', '--logging-format', 'text', '--automaxprocs', '--log-level', 'debug'])
  const res = await fetch(`${sc.url}/healthz`)
  t.equal(res.status, 200)
  t.equal(await res.text(), 'ok')
  id.mode = 'not-ready'
  t.equal((await fetch(`${sc.url}/healthz`)).status, 500)
  t.equal((await fetch(`${sc.url}/metrics`)).status, 200)

  sc.child.kill('SIGTERM')
  t.equal(await sc.exited, 0, 'SIGTERM: exit 0')
  const lines = sc.logs().split('\n').filter(Boolean)
  const parsed = lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return undefined } })
  t.same(lines.filter((_, i) => parsed[i] === undefined), [], 'every log line is JSON')
  t.ok(parsed.some((l) => l?.['msg'] === 'livenessprobe logging flags accepted and ignored'), 'the ignored flags are logged at debug')
  t.ok(parsed.some((l) => l?.['msg'] === 'probe failed' && l['reason'] === 'not_ready'), 'a failed probe is logged')
  t.ok(parsed.some((l) => l?.['msg'] === 'closing'))
})

t.test('the sidecar process refuses bad flags with exit 2', { skip: built ? false : 'dist/sidecar/main.js is missing' }, async (t) => {
  const { spawnSync } = await import('node:child_process')
  const bad = spawnSync(process.execPath, [SIDECAR_MAIN, '--health-port=1', '--http-endpoint=:2'], { encoding: 'utf8' })
  t.equal(bad.status, 2)
  t.match(bad.stderr, /only one of --health-port and --http-endpoint/)
  const help = spawnSync(process.execPath, [SIDECAR_MAIN, '-h'], { encoding: 'utf8' })
  t.equal(help.status, 2)
  t.match(help.stderr, /--csi-address/)
})
