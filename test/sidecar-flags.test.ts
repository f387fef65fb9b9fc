// The sidecar's command line against livenessprobe v2.19.0's: same names, defaults and
// conflicts, Go flag syntax, and its logging flags accepted and ignored. Pure table tests.
import t from 'tap'
import { FlagError } from '../common/flags.js'
import { parseDuration } from '../common/flags.js'
import { formatDuration, parseCsiAddress, parseListenAddress, parseSidecarArgs, splitGoFlags } from '../sidecar/flags.js'

type TT = Parameters<Parameters<typeof t.test>[0]>[0]

// tap matches a thrown error against a class by name, and FlagError keeps Error's; check both
// the class (runMain prints FlagErrors without a stack and exits 2) and the message.
function flagError(t: TT, fn: () => unknown, message: RegExp, what: string): void {
  try {
    fn()
    t.fail(`${what}: expected a FlagError`)
  } catch (e) {
    t.ok(e instanceof FlagError, `${what}: a FlagError`)
    t.match((e as Error).message, message, `${what}: ${message}`)
  }
}

t.test('defaults are livenessprobe v2.19.0 defaults', async (t) => {
  const c = parseSidecarArgs([])
  t.same(c.csi, { target: 'unix:///run/csi/socket', socketPath: '/run/csi/socket' }, '--csi-address /run/csi/socket')
  t.same(c.listen, { host: '', port: 9808 }, '--health-port 9808 on every interface')
  t.equal(c.probeTimeoutMs, 3000, '--probe-timeout 3s (livenessprobe raised it from 1s in v2.17.0)')
  t.equal(c.metricsPath, '/metrics')
  t.equal(c.extraMetricsListen, undefined, 'no --metrics-address listener')
  t.equal(c.driverMetricsSocket, '/run/csi/socket-metrics.sock', "the driver's metrics socket sits beside its CSI socket")
  t.equal(c.logLevel, 'info')
  t.same(c.ignoredFlags, [])
})

t.test('the args of a typical livenessprobe manifest', async (t) => {
  const c = parseSidecarArgs(['--csi-address=/csi/csi.sock', '--health-port=9898', '--probe-timeout=1s', '--v=2'])
  t.same(c.csi, { target: 'unix:///csi/csi.sock', socketPath: '/csi/csi.sock' })
  t.equal(c.driverMetricsSocket, '/csi/csi-metrics.sock')
  t.same(c.listen, { host: '', port: 9898 })
  t.equal(c.probeTimeoutMs, 1000)
  t.same(c.ignoredFlags, ['--v=2'])

  const h = parseSidecarArgs(['--csi-address', 'unix:///csi/csi.sock', '--http-endpoint', '127.0.0.1:9808', '--probe-timeout', '1500ms'])
  t.same(h.listen, { host: '127.0.0.1', port: 9808 }, '--http-endpoint replaces --health-port')
  t.equal(h.probeTimeoutMs, 1500)
  t.same(parseSidecarArgs(['--http-endpoint=:9000', '--health-port=9808']).listen, { host: '', port: 9000 },
    'an explicit --health-port equal to the default may stand beside --http-endpoint, as in livenessprobe')
})

t.test("Go's flag syntax: single dash, separate values, values that start with a dash", async (t) => {
  t.same(splitGoFlags(['-csi-address=/a.sock', '-v', '5', '--vmodule', 'x=3', '-logging-format=json', '-automaxprocs', '--log-json-split-stream', '--probe-timeout', '2s']), {
    args: ['--csi-address=/a.sock', '--probe-timeout=2s'],
    ignored: ['--v=5', '--vmodule=x=3', '--logging-format=json', '--automaxprocs', '--log-json-split-stream'],
  })
  t.same(splitGoFlags(['--log-flush-frequency=5s', '--log-text-info-buffer-size', '1Ki', '--automaxprocs=false']).ignored,
    ['--log-flush-frequency=5s', '--log-text-info-buffer-size=1Ki', '--automaxprocs=false'])
  t.same(splitGoFlags(['-h']).args, ['--help'])
  t.same(splitGoFlags(['--', '-v']).args, ['--', '-v'], 'nothing after -- is a flag')
  flagError(t, () => splitGoFlags(['--v']), /flag needs an argument: --v/, 'a value flag at the end without its value')
  flagError(t, () => parseSidecarArgs(['--probe-timeout', '-1s']), /greater than zero/, 'a value that starts with a dash is still the value')
})

t.test('mistakes are FlagErrors that name the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--health-port=9000', '--http-endpoint=:9001'], /only one of --health-port and --http-endpoint/],
    [['--metrics-address=:8080', '--http-endpoint=:9001'], /only one of --metrics-address and --http-endpoint/],
    [['--health-port=http'], /--health-port "http": expected a port number/],
    [['--health-port=70000'], /--health-port/],
    [['--http-endpoint=9808'], /--http-endpoint "9808": expected HOST:PORT/],
    [['--probe-timeout=1'], /--probe-timeout "1": expected a Go duration/],
    [['--probe-timeout=0'], /must be greater than zero/],
    [['--metrics-path=metrics'], /--metrics-path/],
    [['--log-level=loud'], /--log-level "loud"/],
    [['--csi-address='], /--csi-address: must not be empty/],
    [['--csi-address=/' + 'x'.repeat(120)], /at most 107/],
    [['--metrics-socket=tcp://1.2.3.4:5'], /--metrics-socket "tcp:\/\/1\.2\.3\.4:5": expected an absolute path or off/],
    [['--metrics-socket=rel.sock'], /--metrics-socket/],
    [['--no-such-flag'], /no-such-flag/],
  ]
  for (const [argv, message] of cases) flagError(t, () => parseSidecarArgs(argv), message, argv.join(' '))
})

t.test('--csi-address forms', async (t) => {
  t.same(parseCsiAddress('/csi/csi.sock'), { target: 'unix:///csi/csi.sock', socketPath: '/csi/csi.sock' })
  t.same(parseCsiAddress('unix:///csi/csi.sock'), { target: 'unix:///csi/csi.sock', socketPath: '/csi/csi.sock' })
  t.same(parseCsiAddress('unix:/csi/csi.sock'), { target: 'unix:///csi/csi.sock', socketPath: '/csi/csi.sock' })
  t.same(parseCsiAddress('localhost:10000'), { target: 'localhost:10000' }, 'HOST:PORT goes to gRPC as it is')
  t.same(parseCsiAddress('tcp://127.0.0.1:10000'), { target: '127.0.0.1:10000' })
  const tcp = parseSidecarArgs(['--csi-address=127.0.0.1:10000'])
  t.equal(tcp.driverMetricsSocket, undefined, 'a TCP driver has no metrics socket beside it')
  t.equal(parseSidecarArgs(['--csi-address=127.0.0.1:1', '--metrics-socket=unix:///m/x.sock']).driverMetricsSocket, '/m/x.sock')
  t.equal(parseSidecarArgs(['--metrics-socket=/m/y.sock']).driverMetricsSocket, '/m/y.sock', 'the flag overrides the default')
  t.equal(parseSidecarArgs(['--metrics-socket=off']).driverMetricsSocket, undefined, 'off: relay nothing, as the driver\'s flag')
})

t.test('Go durations', async (t) => {
  const ok: [string, number][] = [['1s', 1000], ['1.5s', 1500], ['300ms', 300], ['1m30s', 90_000], ['2h45m', 9_900_000], ['.5s', 500],
    ['1000us', 1], ['1000µs', 1], ['1000000ns', 1], ['0', 0], ['+2s', 2000]]
  const go = { syntax: 'go' } as const
  for (const [s, ms] of ok) t.equal(parseDuration('d', s, go), ms, s)
  for (const s of ['', '1', 's', '1x', '1s2', '1.2.3s', ' 1s']) flagError(t, () => parseDuration('d', s, go), /expected a Go duration/, JSON.stringify(s))
  flagError(t, () => parseSidecarArgs(['--probe-timeout=600h']), /--probe-timeout "600h": at most 24 days/, 'a Node timer cannot wait 600h')
  t.equal(parseSidecarArgs(['--probe-timeout=1.5ms']).probeTimeoutMs, 1.5, 'below a millisecond is kept, as Go keeps it')
  t.equal(formatDuration(1000), '1s')
  t.equal(formatDuration(1500), '1.5s')
  t.equal(formatDuration(250), '250ms')
})

t.test('listen addresses', async (t) => {
  t.same(parseListenAddress('f', ':9808'), { host: '', port: 9808 })
  t.same(parseListenAddress('f', '0.0.0.0:1'), { host: '0.0.0.0', port: 1 })
  t.same(parseListenAddress('f', '[::1]:9808'), { host: '::1', port: 9808 })
  t.same(parseListenAddress('f', 'localhost:80'), { host: 'localhost', port: 80 })
  for (const s of ['9808', '::1:9808', 'a:b', ':', ':99999']) flagError(t, () => parseListenAddress('f', s), /--f .*expected HOST:PORT/, s)
  t.same(parseSidecarArgs(['--metrics-address=:8080']).extraMetricsListen, { host: '', port: 8080 }, "livenessprobe's deprecated separate metrics address")
})
