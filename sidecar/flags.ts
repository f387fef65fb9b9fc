// The sidecar's command line. It is a drop-in for the kubernetes-csi livenessprobe sidecar
// (v2.19.0, cmd/livenessprobe/main.go), so it takes that program's flags with the same names,
// defaults and conflicts, in Go's `flag` syntax (`-flag` or `--flag`, `=value` or a separate
// argument), and accepts the logging flags every livenessprobe manifest may carry. Swapping the
// image must be the only change a pod spec needs.
import path from 'node:path'
import { FlagError, LOG_LEVEL_FLAG, metricsSocketFlag, parseDuration, parseFlags, parseLogLevel } from '../common/flags.js'
import { metricsSocketFor } from '../common/process-metrics.js'

export const DEFAULT_HEALTH_PORT = '9808'

export const SIDECAR_FLAGS = {
  'csi-address': { type: 'string', default: '/run/csi/socket', help: 'the CSI driver socket: a path, unix:///PATH, or HOST:PORT (as livenessprobe)' },
  'health-port': { type: 'string', default: DEFAULT_HEALTH_PORT, help: 'TCP port for /healthz and /metrics on all interfaces; cannot be changed together with --http-endpoint (as livenessprobe)' },
  'http-endpoint': { type: 'string', default: '', help: 'TCP address for /healthz and /metrics, e.g. :9808 or 127.0.0.1:9808; replaces --health-port (as livenessprobe)' },
  'probe-timeout': { type: 'string', default: '3s', help: 'deadline of one Identity.Probe call, in Go duration syntax (as livenessprobe)' },
  'metrics-address': { type: 'string', default: '', help: '(deprecated, as livenessprobe) an extra TCP address that also serves the metrics path; cannot be set with --http-endpoint' },
  'metrics-path': { type: 'string', default: '/metrics', help: 'HTTP path of the Prometheus metrics (as livenessprobe)' },
  'metrics-socket': { type: 'string', default: '', help: "the driver's metrics unix socket to relay, as the driver's own --metrics-socket (default: beside the CSI socket, csi.sock -> csi-metrics.sock; off: relay nothing)" },
  'log-level': LOG_LEVEL_FLAG,
} as const

// Flags livenessprobe registers that have no meaning here: the logging flags of
// k8s.io/component-base/logs/api/v1 (AddGoFlags) and csi-lib-utils' --automaxprocs. Value says
// whether the flag is boolean (Go lets a boolean flag stand alone; others take the next argument).
const IGNORED_FLAGS: Record<string, boolean> = {
  v: false,
  vmodule: false,
  'logging-format': false,
  'log-flush-frequency': false,
  'log-text-split-stream': true,
  'log-text-info-buffer-size': false,
  'log-json-split-stream': true,
  'log-json-info-buffer-size': false,
  automaxprocs: true,
}

export interface SplitArgs {
  /** What common/flags.ts parseFlags should see, with Go's single-dash form made double. */
  args: string[]
  /** Accepted-but-ignored flags as given, for a debug log. */
  ignored: string[]
}

/**
 * Removes livenessprobe's logging flags (`--v=5`, `-v 5`, `--logging-format json`, ...) and turns
 * Go's `-flag` spelling into `--flag`, so the strict parser sees only flags this program acts on.
 * Like Go's flag package, parsing stops at `--`; everything after it is left alone.
 */
export function splitGoFlags(argv: string[]): SplitArgs {
  const args: string[] = []
  const ignored: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!
    if (raw === '--') {
      args.push(...argv.slice(i))
      break
    }
    let a = /^-[^-]/.test(raw) ? '-' + raw : raw
    if (a === '--h') a = '--help'
    const m = /^--([^=]+)(=.*)?$/.exec(a)
    if (!m) {
      args.push(a)
      continue
    }
    const name = m[1]!
    const own = (SIDECAR_FLAGS as Record<string, { type: string }>)[name]
    const ignoredBoolean = IGNORED_FLAGS[name]
    const takesValue = own ? own.type === 'string' : ignoredBoolean === false
    // Go takes the next argument as the value whatever it looks like (`--probe-timeout -1s`);
    // joining it with `=` keeps the strict parser from reading it as a flag.
    let flag = a
    if (takesValue && m[2] === undefined) {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: ${raw}`)
      flag = `${a}=${argv[++i]}`
    }
    if (ignoredBoolean === undefined) args.push(flag)
    else ignored.push(flag)
  }
  return { args, ignored }
}

export interface ListenAddress {
  /** '' means every interface, as in Go's `:9808`. */
  host: string
  port: number
}

/** A Go listen address: `:9808`, `127.0.0.1:9808`, `[::1]:9808`, `localhost:9808`. */
export function parseListenAddress(flag: string, value: string): ListenAddress {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]*):(\d{1,5})$/.exec(value)
  const port = Number(m?.[2])
  if (!m || port > 65535) throw new FlagError(`--${flag} ${JSON.stringify(value)}: expected HOST:PORT or :PORT`)
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port }
}

export interface CsiTarget {
  /** What grpc-js dials. */
  target: string
  /** The socket file when the driver listens on a unix socket. */
  socketPath?: string
}

/**
 * Reads --csi-address as livenessprobe's connection library does: a path (or unix://PATH) is a
 * unix socket, anything else (HOST:PORT, dns:///HOST:PORT) is handed to gRPC as it is.
 */
export function parseCsiAddress(value: string): CsiTarget {
  let p: string | undefined
  if (value.startsWith('unix://')) p = value.slice('unix://'.length)
  else if (value.startsWith('unix:')) p = value.slice('unix:'.length)
  else if (value.startsWith('/')) p = value
  else if (value.startsWith('tcp://')) return { target: value.slice('tcp://'.length) }
  if (p === undefined) {
    if (value === '') throw new FlagError('--csi-address: must not be empty')
    return { target: value }
  }
  const socketPath = path.resolve(p)
  // sun_path holds 107 bytes and a NUL; grpc-js would report a longer path as a vague failure
  // on every probe instead of once here.
  if (Buffer.byteLength(socketPath) > 107) throw new FlagError(`--csi-address ${value}: the socket path is ${Buffer.byteLength(socketPath)} bytes; unix sockets allow at most 107`)
  return { target: `unix://${socketPath}`, socketPath }
}

export interface SidecarConfig {
  /** Where /healthz and the metrics path are served. */
  listen: ListenAddress
  /** livenessprobe's deprecated separate metrics listener, when --metrics-address is set. */
  extraMetricsListen?: ListenAddress
  csi: CsiTarget
  /** The driver's metrics socket; undefined when there is none to relay (`off`, or a TCP driver without the flag). */
  driverMetricsSocket?: string
  probeTimeoutMs: number
  metricsPath: string
  logLevel: string
  /** The logging flags accepted for compatibility and ignored. */
  ignoredFlags: string[]
}

/** Parses the command line into a config; every mistake is a FlagError naming the flag. */
export function parseSidecarArgs(argv: string[]): SidecarConfig {
  const split = splitGoFlags(argv)
  const f = parseFlags(split.args, SIDECAR_FLAGS)
  // livenessprobe's own checks: it compares --health-port with its default, so an explicit
  // `--health-port=9808` next to --http-endpoint is allowed there too.
  if (f['health-port'] !== DEFAULT_HEALTH_PORT && f['http-endpoint'] !== '') {
    throw new FlagError('only one of --health-port and --http-endpoint can be explicitly set')
  }
  if (f['metrics-address'] !== '' && f['http-endpoint'] !== '') {
    throw new FlagError('only one of --metrics-address and --http-endpoint can be explicitly set')
  }
  if (!/^\d{1,5}$/.test(f['health-port']) || Number(f['health-port']) > 65535) {
    throw new FlagError(`--health-port ${JSON.stringify(f['health-port'])}: expected a port number`)
  }
  // livenessprobe's Go syntax; Go would also take 0 and then fail every probe at once, which
  // nobody means.
  const probeTimeoutMs = parseDuration('probe-timeout', f['probe-timeout'], { syntax: 'go', positive: true })
  if (!f['metrics-path'].startsWith('/') || f['metrics-path'] === '/healthz') {
    throw new FlagError(`--metrics-path ${JSON.stringify(f['metrics-path'])}: expected a path starting with / other than /healthz`)
  }
  parseLogLevel(f['log-level'])
  const csi = parseCsiAddress(f['csi-address'])
  // The driver's --metrics-socket rule (same default, `off`), plus the unix:// spelling
  // --csi-address takes.
  const driverMetricsSocket = metricsSocketFlag(f['metrics-socket'].replace(/^unix:\/\//, ''), csi.socketPath, metricsSocketFor)
  const config: SidecarConfig = {
    // `0.0.0.0:PORT` in livenessprobe; Go listens dual-stack on it, so '' (every interface) here.
    listen: f['http-endpoint'] !== '' ? parseListenAddress('http-endpoint', f['http-endpoint']) : { host: '', port: Number(f['health-port']) },
    csi,
    probeTimeoutMs,
    metricsPath: f['metrics-path'],
    logLevel: f['log-level'],
    ignoredFlags: split.ignored,
  }
  if (driverMetricsSocket) config.driverMetricsSocket = driverMetricsSocket
  if (f['metrics-address'] !== '') config.extraMetricsListen = parseListenAddress('metrics-address', f['metrics-address'])
  return config
}

/** Go's formatting of a duration, for messages that name --probe-timeout (`1s`, `1.5s`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms >= 1000) return `${+(ms / 1000).toFixed(3)}s`
  return `${+ms.toFixed(3)}ms`
}
