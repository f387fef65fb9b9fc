#!/usr/bin/env node
// tscsi-controller: parses flags, opens the store, serves Identity + Controller.
import os from 'node:os'
import path from 'node:path'
import { listen, parseEndpoint } from '../common/grpc.js'
import { checkDriverName } from '../common/identity.js'
import { createLogger } from '../common/log.js'
import { parseDuration, parseFlags, runMain } from '../common/flags.js'
import { LocalStore } from '../common/store/local.js'
import { controllerDeps } from './deps.js'
import { buildController } from './server.js'

export const CONTROLLER_FLAGS = {
  endpoint: { type: 'string', default: 'unix:///run/tscsi/controller.sock', help: 'where to serve CSI: unix:///PATH or tcp://HOST:PORT' },
  drivername: { type: 'string', default: 'local.tscsi.dev', help: 'the CSI driver name (must match the StorageClass provisioner)' },
  'state-dir': { type: 'string', default: '/var/lib/tscsi/state', help: 'folder of the local store, shared with the node plugin on this machine' },
  'realise-timeout': { type: 'string', default: '30s', help: 'how long CreateVolume/DeleteVolume wait for the node plugin before answering DEADLINE_EXCEEDED' },
  'enable-attach': { type: 'boolean', default: false, help: 'serve ControllerPublish/UnpublishVolume (for clusters that want VolumeAttachment objects)' },
  'log-level': { type: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
} as const

runMain(async () => {
  const f = parseFlags(process.argv.slice(2), CONTROLLER_FLAGS)
  const driverName = checkDriverName(f.drivername)
  const endpoint = parseEndpoint(f.endpoint)
  const log = createLogger(f['log-level'], 'tscsi-controller')
  const store = await LocalStore.open(path.join(path.resolve(f['state-dir']), 'store'), log)
  const deps = controllerDeps({ store, log, realiseTimeoutMs: parseDuration('realise-timeout', f['realise-timeout']), enableAttach: f['enable-attach'] })
  const running = await listen(buildController(deps, { driverName }), endpoint)
  log.info({ endpoint: running.address, driverName, host: os.hostname() }, 'controller serving')
  const stop = (sig: string): void => {
    log.info({ signal: sig }, 'draining in-flight calls')
    void running.close().then(() => store.close()).then(() => process.exit(0))
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
})
