// The sidecar's own metrics, in a registry of its own. Every name carries `tscsi_sidecar_`,
// including prom-client's process metrics, because the driver's process metrics are relayed in
// the same scrape and two `process_cpu_seconds_total` families would make it invalid.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export const PREFIX = 'tscsi_sidecar_'

/** Why a probe failed; a closed set, so the counter's series are known up front. */
export const FAILURE_REASONS = ['timeout', 'error', 'not_ready'] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]

/** prom-client default metrics that are gauges named like counters. */
export const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export interface SidecarMetrics {
  registry: Registry
  probeDuration: Histogram
  probeFailures: Counter<'reason'>
  driverMetricsUp: Gauge
}

export function sidecarMetrics(opts: { defaultMetrics?: boolean } = {}): SidecarMetrics {
  const registry = new Registry()
  const probeDuration = new Histogram({
    name: `${PREFIX}probe_duration_seconds`,
    help: 'Time an Identity.Probe call to the driver took, failed calls included.',
    // A healthy local driver answers in about a millisecond; the top buckets hold calls that ran
    // into --probe-timeout (livenessprobe's default is 3s).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const probeFailures = new Counter({
    name: `${PREFIX}probe_failures_total`,
    help: 'Identity.Probe calls that made /healthz answer 500, by reason (timeout, error, not_ready).',
    labelNames: ['reason'],
    registers: [registry],
  })
  // Zero series exist from the start, so increase() sees the first failure and a query for the
  // metric finds it before anything has gone wrong.
  for (const reason of FAILURE_REASONS) probeFailures.inc({ reason }, 0)
  const driverMetricsUp = new Gauge({
    name: `${PREFIX}driver_metrics_up`,
    help: "1 if the last relay of the driver's metrics socket succeeded, 0 if not.",
    registers: [registry],
  })
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry, prefix: PREFIX })
    // Gauges whose names end in _total break Prometheus' naming rules (`promtool check metrics`
    // flags them); each is the sum of its labelled namesake (nodejs_active_handles{type}).
    for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(PREFIX + name)
  }
  return { registry, probeDuration, probeFailures, driverMetricsUp }
}
