// common/flags.ts: kubernetes-csi style flags, durations and counts.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { FlagError, parseCount, parseDuration, parseFlags, parseLogLevel, usage, type FlagDefs } from '../common/flags.js'
import { ROOT } from './helpers/driver.js'

const DEFS = {
  endpoint: { type: 'string', default: 'unix:///run/x.sock', help: 'where to serve' },
  nodeid: { type: 'string', help: 'node id' },
  'enable-attach': { type: 'boolean', default: false, help: 'attach' },
  'has-controller': { type: 'boolean', default: true, help: 'controller' },
} as const satisfies FlagDefs

t.test('parseFlags: defaults, both value spellings, booleans with and without =true|false', async (t) => {
  t.same(parseFlags([], DEFS), { endpoint: 'unix:///run/x.sock', nodeid: '', 'enable-attach': false, 'has-controller': true })
  const cases: [string[], Partial<Record<keyof typeof DEFS, string | boolean>>][] = [
    [['--endpoint', 'tcp://127.0.0.1:1'], { endpoint: 'tcp://127.0.0.1:1' }],
    [['--endpoint=tcp://127.0.0.1:1'], { endpoint: 'tcp://127.0.0.1:1' }],
    [['--nodeid=a=b'], { nodeid: 'a=b' }],
    [['--enable-attach'], { 'enable-attach': true }],
    [['--enable-attach=true'], { 'enable-attach': true }],
    [['--enable-attach=false'], { 'enable-attach': false }],
    [['--has-controller=false'], { 'has-controller': false }],
    [['--has-controller=false', '--nodeid', 'n1'], { 'has-controller': false, nodeid: 'n1' }],
  ]
  for (const [argv, want] of cases) t.match(parseFlags(argv, DEFS), want, argv.join(' '))
})

t.test('parseFlags: mistakes are FlagErrors naming the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--enable-attach=yes'], /--enable-attach/],
    [['--enable-attach=1'], /--enable-attach/],
    [['--enable-attach='], /--enable-attach/],
    [['--bogus'], /bogus/],
    [['--endpoint'], /endpoint/],
    [['stray'], /stray/],
  ]
  for (const [argv, re] of cases) t.throws(() => parseFlags(argv, DEFS), { constructor: FlagError, message: re }, argv.join(' '))
  t.throws(() => parseFlags(['--help'], DEFS), { constructor: FlagError, message: /--endpoint VALUE[\s\S]*--enable-attach/ }, '--help prints usage')
})

t.test('usage lists every flag with its default', async (t) => {
  const u = usage(DEFS)
  for (const name of Object.keys(DEFS)) t.match(u, `--${name}`)
  t.match(u, '(default "unix:///run/x.sock")')
  t.match(u, '(default true)')
})

t.test('parseDuration: ms, s, m, h and bare seconds', async (t) => {
  const cases: [string, number][] = [
    ['500ms', 500], ['30s', 30_000], ['2m', 120_000], ['1h', 3_600_000], ['45', 45_000], ['1.5s', 1500], [' 10s ', 10_000], ['0s', 0],
  ]
  for (const [v, ms] of cases) t.equal(parseDuration('realise-timeout', v), ms, v)
  for (const bad of ['', 's', '-1s', '1d', '1e3', '10 s', '1s2', 'NaN', 'Infinity', '.', '.s', '1.2.3', '-', '+', '--1s']) {
    t.throws(() => parseDuration('realise-timeout', bad), { constructor: FlagError, message: /--realise-timeout/ }, JSON.stringify(bad))
  }
})

t.test('parseDuration refuses what a Node timer cannot hold', async (t) => {
  // setTimeout/setInterval turn any delay above 2^31-1 ms (about 24.8 days) into 1 ms.
  t.throws(() => parseDuration('realise-timeout', '600h'), { constructor: FlagError, message: /--realise-timeout/ }, '600h would fire after 1 ms')
})

t.test('parseDuration: every flag also takes Go\'s syntax, the sidecar\'s flags only that', async (t) => {
  const both: [string, number][] = [
    ['1m30s', 90_000], ['2h45m', 9_900_000], ['1h1h', 7_200_000], ['.5s', 500], ['1.s', 1000], ['1.1s', 1100], ['0.1s', 100], ['+2s', 2000],
    ['1000us', 1], ['1000µs', 1], ['1000μs', 1], ['1000000ns', 1], ['1500us', 1.5], ['0', 0], ['-0s', 0],
    ['596h', 2_145_600_000], ['2147483647ms', 2 ** 31 - 1], ['596h31m23.647s', 2 ** 31 - 1],
  ]
  const oursOnly: [string, number][] = [['1.5', 1500], ['.5', 500], [' 1m30s ', 90_000]]
  for (const [v, ms] of [...both, ...oursOnly]) t.equal(parseDuration('realise-timeout', v), ms, v)
  for (const [v, ms] of both) t.equal(parseDuration('probe-timeout', v, { syntax: 'go' }), ms, `${v} (go)`)
  const refused = (v: string, message: RegExp, rule = {}) =>
    t.throws(() => parseDuration('probe-timeout', v, rule), { constructor: FlagError, message }, `${JSON.stringify(v)} ${JSON.stringify(rule)}`)
  refused('45', /--probe-timeout "45": expected a Go duration/, { syntax: 'go' })
  refused(' 1s', /expected a Go duration/, { syntax: 'go' })
  refused('-1m30s', /--probe-timeout "-1m30s": must not be negative/)
  refused('-1s', /must be greater than zero/, { positive: true })
  refused('0', /must be greater than zero/, { positive: true, syntax: 'go' })
  refused('0s', /must be greater than zero/, { positive: true })
  refused('2147483648ms', /--probe-timeout "2147483648ms": at most 24 days/)
  refused('597h', /at most 24 days/, { syntax: 'go' })
  refused('596h31m23.648s', /at most 24 days/)
})

t.test('parseCount: non-negative integers', async (t) => {
  t.equal(parseCount('max-volumes-per-node', '0'), 0)
  t.equal(parseCount('max-volumes-per-node', '64'), 64)
  t.equal(parseCount('max-volumes-per-node', '007'), 7)
  for (const bad of ['', '-1', '1.5', '1e3', ' 1', 'x', '0x10']) {
    t.throws(() => parseCount('max-volumes-per-node', bad), { constructor: FlagError, message: /--max-volumes-per-node/ }, JSON.stringify(bad))
  }
  t.throws(() => parseCount('max-volumes-per-node', '99999999999999999999'), { constructor: FlagError, message: /--max-volumes-per-node/ }, 'beyond Number.MAX_SAFE_INTEGER')
})

t.test('--log-level: every program refuses an unknown level with a flag error and exit 2', async (t) => {
  for (const l of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) t.equal(parseLogLevel(l), l)
  t.throws(() => parseLogLevel('loud'), { message: /--log-level "loud"/ })
  // Once only the metrics sidecar checked it; the others died with pino's stack trace, exit 1.
  for (const program of ['controller', 'node', 'sidecar']) {
    const r = spawnSync(process.execPath, [path.join(ROOT, `dist/${program}/main.js`), '--log-level', 'loud'], { encoding: 'utf8' })
    t.equal(r.status, 2, `${program} exits 2`)
    t.match(r.stderr, /--log-level "loud": expected one of fatal, error/, `${program} names the flag and the levels`)
  }
})
