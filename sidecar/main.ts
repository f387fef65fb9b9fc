#!/usr/bin/env node
// tscsi-metrics: parses livenessprobe's flags, builds the app, listens. Runs beside the
// controller and beside each node plugin, sharing the folder of the driver's socket.
import http from 'node:http'
import net from 'node:net'
import { runMain } from '../common/flags.js'
import { createLogger } from '../common/log.js'
import { buildMetricsApp } from './app.js'
import { parseSidecarArgs, type ListenAddress } from './flags.js'

// Go's `:9808` (and livenessprobe's `0.0.0.0:9808`) listens on IPv4 and IPv6 at once; '::' does
// the same in Node, except on a kernel without IPv6, where only 0.0.0.0 binds.
async function anyHost(): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.createServer()
    probe.once('error', () => resolve('0.0.0.0'))
    probe.listen({ host: '::', port: 0 }, () => probe.close(() => resolve('::')))
  })
}

runMain(async () => {
  const cfg = parseSidecarArgs(process.argv.slice(2))
  const log = createLogger(cfg.logLevel, 'tscsi-metrics')
  if (cfg.ignoredFlags.length) log.debug({ flags: cfg.ignoredFlags }, 'livenessprobe logging flags accepted and ignored')
  const app = buildMetricsApp({
    csiTarget: cfg.csi.target,
    driverMetricsSocket: cfg.driverMetricsSocket,
    probeTimeoutMs: cfg.probeTimeoutMs,
    metricsPath: cfg.metricsPath,
    logger: log,
  })
  const host = async (a: ListenAddress): Promise<string> => (a.host === '' ? anyHost() : a.host)
  await app.listen({ host: await host(cfg.listen), port: cfg.listen.port })

  // livenessprobe's deprecated --metrics-address: the metrics path alone on a second address.
  let extra: http.Server | undefined
  if (cfg.extraMetricsListen) {
    const only = cfg.metricsPath
    extra = http.createServer((req, res) => {
      if (new URL(req.url ?? '/', 'http://x').pathname === only) app.routing(req, res)
      else res.writeHead(404).end()
    })
    const { port } = cfg.extraMetricsListen
    const h = await host(cfg.extraMetricsListen)
    await new Promise<void>((resolve, reject) => extra!.once('error', reject).listen({ host: h, port }, resolve))
    log.info({ address: extra.address() }, 'metrics also served on --metrics-address')
  }
  log.info({ csi: cfg.csi.target, driverMetrics: cfg.driverMetricsSocket ?? null, probeTimeoutMs: cfg.probeTimeoutMs }, 'sidecar serving')

  const stop = (signal: string): void => {
    log.info({ signal }, 'closing')
    extra?.close()
    void app.close().then(() => process.exit(0))
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
})
