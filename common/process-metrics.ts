// Prometheus metrics of a driver process (prom-client): what every process records (RPCs,
// process defaults), and the unix-socket endpoint the metrics sidecar relays them from.
import { createServer, type Server } from 'node:http'
import path from 'node:path'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { CallObserver } from './grpc.js'
import { removeStaleSocket } from './grpc.js'
import type { Logger } from './log.js'

// Latency buckets from 50 µs to 60 s: node RPCs take tens of microseconds, a CreateVolume that
// waits for a node can take seconds.
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export interface ProcessMetrics {
  registry: Registry
  /** Hooked into the gRPC boundary: one count and one latency sample per RPC. */
  observe: CallObserver
}

export function processMetrics(component: string): ProcessMetrics {
  const registry = new Registry()
  registry.setDefaultLabels({ component })
  collectDefaultMetrics({ register: registry })
  // These three are gauges named like counters, which promtool rightly flags; each is only the
  // sum of its label-split sibling (nodejs_active_handles{type} ...), so nothing is lost.
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n)
  const calls = new Counter({
    name: 'tscsi_rpc_total',
    help: 'CSI RPCs served, by service, method and gRPC code.',
    labelNames: ['service', 'method', 'code'],
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'tscsi_rpc_duration_seconds',
    help: 'Time to serve a CSI RPC, by service and method.',
    labelNames: ['service', 'method'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  })
  return {
    registry,
    observe: (service, method, code, seconds) => {
      calls.inc({ service, method, code })
      latency.observe({ service, method }, seconds)
    },
  }
}

/** Serves GET /metrics over a unix socket (never TCP: the node plugin is privileged). */
export async function serveMetrics(registry: Registry, socketPath: string, log: Logger): Promise<{ close(): Promise<void> }> {
  removeStaleSocket(socketPath)
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n')
      return
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => {
        log.error({ err: e }, 'collecting metrics failed')
        res.writeHead(500).end('collecting metrics failed\n')
      },
    )
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, () => resolve()))
  return {
    close: () => new Promise<void>((resolve) => server.close(() => { removeStaleSocket(socketPath); resolve() })),
  }
}

// Where a driver process serves its metrics: a unix socket beside its CSI socket, so the
// privileged node plugin opens no TCP port and the sidecar (which shares the socket folder, as the
// livenessprobe sidecar does) can relay them.

/** `/csi/csi.sock` → `/csi/csi-metrics.sock`; `/run/csi/socket` → `/run/csi/socket-metrics.sock`. */
export function metricsSocketFor(csiSocketPath: string): string {
  const dir = path.dirname(csiSocketPath)
  const base = path.basename(csiSocketPath).replace(/\.sock$/, '')
  return path.join(dir, `${base}-metrics.sock`)
}
