#!/usr/bin/env node
// tscsi-controller: parses flags, opens the store, serves Identity + Controller.
import os from 'node:os'
import { listen, parseEndpoint } from '../common/grpc.js'
import { checkDriverName } from '../common/identity.js'
import { createLogger } from '../common/log.js'
import { LOG_LEVEL_FLAG, metricsSocketFlag, parseDuration, parseFlags, parseLogLevel, runMain } from '../common/flags.js'
import { metricsSocketFor, processMetrics, serveMetrics } from '../common/process-metrics.js'
import { openStore, STORE_FLAGS } from '../common/store/open.js'
import { controllerDeps } from './deps.js'
import { LostNodeWatch } from './lostnodes.js'
import { controllerMetrics } from './controller-metrics.js'
import { buildController } from './server.js'

export const CONTROLLER_FLAGS = {
  endpoint: { type: 'string', default: 'unix:///run/tscsi/controller.sock', help: 'where to serve CSI: unix:///PATH or tcp://HOST:PORT' },
  drivername: { type: 'string', default: 'local.tscsi.dev', help: 'the CSI driver name (must match the StorageClass provisioner)' },
  'state-dir': { type: 'string', default: '/var/lib/tscsi/state', help: 'folder of the local store, shared with the node plugin on this machine' },
  'realise-timeout': { type: 'string', default: '30s', help: 'how long CreateVolume/DeleteVolume wait for the node plugin before answering DEADLINE_EXCEEDED' },
  'enable-attach': { type: 'boolean', default: false, help: 'serve ControllerPublish/UnpublishVolume (for clusters that want VolumeAttachment objects)' },
  'lost-node-interval': { type: 'string', default: '60s', help: 'how often to look for volumes whose node has left (one replica reports them)' },
  'metrics-socket': { type: 'string', default: '', help: 'unix socket serving Prometheus metrics to the sidecar (default: <csi socket>-metrics.sock beside the CSI socket; off to disable)' },
  ...STORE_FLAGS,
  'log-level': LOG_LEVEL_FLAG,
} as const

runMain(async () => {
  const f = parseFlags(process.argv.slice(2), CONTROLLER_FLAGS)
  const driverName = checkDriverName(f.drivername)
  const endpoint = parseEndpoint(f.endpoint)
  const log = createLogger(parseLogLevel(f['log-level']), 'tscsi-controller')
  const store = await openStore(f.store, { stateDir: f['state-dir'], kubeconfig: f.kubeconfig }, log)
  const metrics = processMetrics('controller')
  const deps = controllerDeps({
    store, log, realiseTimeoutMs: parseDuration('realise-timeout', f['realise-timeout']), enableAttach: f['enable-attach'],
    metrics: controllerMetrics(metrics.registry, store),
  })
  const metricsPath = metricsSocketFlag(f['metrics-socket'], endpoint.socketPath, metricsSocketFor)
  const metricsServer = metricsPath ? await serveMetrics(metrics.registry, metricsPath, log) : undefined
  const lost = new LostNodeWatch(store, log, {
    id: `${os.hostname()}.${process.pid}`, intervalMs: parseDuration('lost-node-interval', f['lost-node-interval']), registry: metrics.registry,
  })
  lost.start()
  const running = await listen(buildController(deps, { driverName, observe: metrics.observe }), endpoint)
  log.info({ endpoint: running.address, metricsSocket: metricsPath, driverName, host: os.hostname() }, 'controller serving')
  const stop = (sig: string): void => {
    log.info({ signal: sig }, 'draining in-flight calls')
    lost.stop()
    void running.close().then(() => metricsServer?.close()).then(() => store.close()).then(() => process.exit(0))
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
})
