// Identity.Probe over the driver's socket, as livenessprobe's /healthz does it: one call per
// health check with the probe timeout as its deadline. Unlike livenessprobe, which dials anew for
// every check, one channel is kept: a frozen driver still fails the call at its deadline, and a
// healthy one costs no connection set-up per kubelet probe.
import * as grpc from '@grpc/grpc-js'
import { csiPackage } from '../common/grpc.js'
import { codeName } from '../common/errors.js'
import { formatDuration } from './flags.js'
import type { FailureReason, SidecarMetrics } from './own-metrics.js'

export type ProbeResult =
  | { ok: true; seconds: number }
  | { ok: false; seconds: number; reason: FailureReason; message: string }

export interface Prober {
  probe(): Promise<ProbeResult>
  close(): void
}

export interface ProberOptions {
  /** A grpc-js target: unix:///PATH or HOST:PORT. */
  target: string
  timeoutMs: number
  metrics: Pick<SidecarMetrics, 'probeDuration' | 'probeFailures'>
}

// grpc-js backs off up to 120 s between reconnects by default, so a restarted driver would stay
// "down" long after it is back. livenessprobe's connection library caps the delay at 1 s.
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
}

const NOT_READY = 'driver responded but is not ready'

export function driverProber(opts: ProberOptions): Prober {
  const Identity = csiPackage().Identity
  const client = new Identity(opts.target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS) as unknown as grpc.Client & {
    Probe(req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { ready?: { value?: boolean } | null }) => void): void
  }
  const timeout = formatDuration(opts.timeoutMs)

  function call(): Promise<{ ready: boolean }> {
    return new Promise((resolve, reject) => {
      client.Probe({}, { deadline: Date.now() + opts.timeoutMs }, (err, res) => {
        if (err) return reject(err)
        // CSI: "If not present, the caller SHALL assume that the plugin is in a ready state."
        // proto-loader's `defaults` turns an absent wrapper into null.
        resolve({ ready: res?.ready == null ? true : res.ready.value === true })
      })
    })
  }

  return {
    async probe(): Promise<ProbeResult> {
      const end = opts.metrics.probeDuration.startTimer()
      let failure: { reason: FailureReason; message: string } | undefined
      try {
        const { ready } = await call()
        if (!ready) failure = { reason: 'not_ready', message: NOT_READY }
      } catch (e) {
        failure = describe(e as grpc.ServiceError, timeout)
      }
      const seconds = end()
      if (!failure) return { ok: true, seconds }
      opts.metrics.probeFailures.inc({ reason: failure.reason })
      return { ok: false, seconds, ...failure }
    },
    close: () => client.close(),
  }
}

/** One line that says what went wrong, for the 500 body kubelet records in the pod's events. */
function describe(err: grpc.ServiceError, timeout: string): { reason: FailureReason; message: string } {
  // grpc-js appends an empty "Resolution note:" to connection failures; it only adds noise.
  const details = String(err.details ?? err.message ?? err).replace(/\s+/g, ' ').replace(/\s*Resolution note:\s*$/, '').trim()
  const code = typeof err.code === 'number' ? codeName(err.code) : 'UNKNOWN'
  if (err.code === grpc.status.DEADLINE_EXCEEDED) {
    return { reason: 'timeout', message: `Identity.Probe timed out: no answer within --probe-timeout ${timeout} (DEADLINE_EXCEEDED: ${details})` }
  }
  return { reason: 'error', message: `Identity.Probe failed: ${code}: ${details}` }
}
