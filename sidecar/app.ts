// The sidecar's HTTP app: /healthz as livenessprobe answers it, and the metrics path with the
// sidecar's own metrics followed by the driver's. Built here, listened on only by main.ts, so
// tests drive it with inject().
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import { createLogger, type Logger } from '../common/log.js'
import { driverProber } from './probe.js'
import { sidecarMetrics, type SidecarMetrics } from './own-metrics.js'
import { fetchDriverMetrics, withoutFamilies } from './relay.js'

export interface MetricsAppOptions {
  /** The driver's CSI endpoint as grpc-js dials it: unix:///PATH or HOST:PORT. */
  csiTarget: string
  /** The driver's metrics unix socket; without one only the sidecar's own metrics are served. */
  driverMetricsSocket?: string
  /** Deadline of one Probe call, and of one fetch of the driver's metrics. */
  probeTimeoutMs: number
  /** Defaults to /metrics, as livenessprobe's --metrics-path. */
  metricsPath?: string
  logger?: Logger
  logLevel?: string
  /** prom-client's process metrics (on by default; tests that build many apps may turn them off). */
  defaultMetrics?: boolean
}

export interface MetricsApp extends FastifyInstance {
  sidecarMetrics: SidecarMetrics
}

export function buildMetricsApp(opts: MetricsAppOptions): MetricsApp {
  const logger = opts.logger ?? createLogger(opts.logLevel ?? 'info', 'tscsi-metrics')
  const metricsPath = opts.metricsPath ?? '/metrics'
  // kubelet probes every few seconds and Prometheus scrapes as often; two log lines per request
  // would bury everything else. Both handlers log what matters themselves; other requests
  // (a 404, say) keep fastify's request logs.
  const quiet = new Set(['/healthz', metricsPath])
  const logController = new LogController({ disableRequestLogging: (req) => quiet.has(req.routeOptions.url ?? '') })
  const app = Fastify({ loggerInstance: logger, logController })
  const metrics = sidecarMetrics({ defaultMetrics: opts.defaultMetrics })
  const prober = driverProber({ target: opts.csiTarget, timeoutMs: opts.probeTimeoutMs, metrics })
  const log = app.log.child({ driver: opts.csiTarget })

  app.get('/healthz', async (_req, reply) => {
    const result = await prober.probe()
    const ms = +(result.seconds * 1000).toFixed(3)
    reply.type('text/plain; charset=utf-8')
    if (result.ok) {
      log.debug({ ms }, 'probe ok')
      return reply.code(200).send('ok')
    }
    log.warn({ ms, reason: result.reason, error: result.message }, 'probe failed')
    return reply.code(500).send(result.message)
  })

  // Warn when the driver's metrics go away and say when they are back, rather than once per scrape.
  let relayWasUp: boolean | undefined
  const ownNames = (): Set<string> => new Set(metrics.registry.getMetricsAsArray().map((m) => m.name))

  app.get(metricsPath, async (_req, reply) => {
    let driver = ''
    if (opts.driverMetricsSocket) {
      try {
        driver = withoutFamilies(await fetchDriverMetrics(opts.driverMetricsSocket, opts.probeTimeoutMs), ownNames())
        metrics.driverMetricsUp.set(1)
        if (relayWasUp === false) log.info({ socket: opts.driverMetricsSocket }, 'driver metrics are back')
        relayWasUp = true
      } catch (e) {
        metrics.driverMetricsUp.set(0)
        if (relayWasUp !== false) log.warn({ socket: opts.driverMetricsSocket, error: (e as Error).message }, 'driver metrics unavailable; serving the sidecar\'s own')
        relayWasUp = false
      }
    } else {
      metrics.driverMetricsUp.set(0)
    }
    // After the relay, so driver_metrics_up describes this scrape.
    const own = await metrics.registry.metrics()
    reply.type(metrics.registry.contentType)
    return reply.send(own.endsWith('\n') || own === '' ? own + driver : `${own}\n${driver}`)
  })

  app.addHook('onClose', async () => prober.close())
  app.decorate('sidecarMetrics', metrics)
  return app as unknown as MetricsApp
}
