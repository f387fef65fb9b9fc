#!/usr/bin/env -S node --max-semi-space-size=1
// (The flag: a node plugin allocates little, and V8's default young generation, 16 MiB
// semi-spaces sized for throughput, costs about 6 MB of resident memory on every node for
// nothing. The image runs this file by its shebang; the bench reads the flag from here.)
// tscsi-node: parses flags, rebuilds the mount index, starts realising this node's volumes and
// serves Identity + Node.
import os from 'node:os'
import path from 'node:path'
import { chmodSync, chownSync, realpathSync } from 'node:fs'
import { listen, parseEndpoint } from '../common/grpc.js'
import { checkDriverName } from '../common/identity.js'
import { createLogger } from '../common/log.js'
import { FlagError, LOG_LEVEL_FLAG, metricsSocketFlag, parseCount, parseDuration, parseFlags, parseLogLevel, runMain } from '../common/flags.js'
import { metricsSocketFor, processMetrics, serveMetrics } from '../common/process-metrics.js'
import { openStore, STORE_FLAGS } from '../common/store/open.js'
import { isNodeId, POOL_NAME } from '../common/validate.js'
import { readMountInfo } from '../native/index.js'
import { prepareDataRoot } from './datadir.js'
import { nodeDeps } from './deps.js'
import { DEFAULT_POOL, Layout } from './layout.js'
import { nativeMounter } from './mounter.js'
import { volumeMounts } from './mountindex.js'
import { instrumentMounter, nodeMetrics } from './node-metrics.js'
import { detachOrphanLoops, imageMounts } from './loops.js'
import { nativeQuota } from './quota.js'
import { nfsMounts, readNotes } from './nfs.js'
import { OrphanWatch } from './orphans.js'
import { Realiser } from './realiser.js'
import { serveRegistration } from './registration.js'
import { buildNode } from './server.js'

export const NODE_FLAGS = {
  endpoint: { type: 'string', default: 'unix:///run/tscsi/node.sock', help: 'where to serve CSI: unix:///PATH or tcp://HOST:PORT' },
  drivername: { type: 'string', default: 'local.tscsi.dev', help: 'the CSI driver name (must match the controller\'s)' },
  nodeid: { type: 'string', default: '', help: 'this node\'s id, also its topology value (default: the host name)' },
  'state-dir': { type: 'string', default: '/var/lib/tscsi/state', help: 'folder of the local store, shared with the controller on this machine' },
  'data-root': { type: 'string', default: '/var/lib/tscsi/data', help: 'where volume data lives on this node (the pool named default)' },
  pool: { type: 'string', multiple: true, help: 'NAME=PATH: another data root this node serves as pool NAME (repeatable), chosen by the StorageClass parameter pool' },
  'max-volumes-per-node': { type: 'string', default: '0', help: 'volume limit reported in NodeGetInfo (0: no limit)' },
  'has-controller': { type: 'boolean', default: true, help: 'advertise CONTROLLER_SERVICE in this node\'s Identity (the deployment runs a controller)' },
  'capacity-interval': { type: 'string', default: '60s', help: 'how often the node reports its free space, re-checks its volumes and looks for data no volume or snapshot owns' },
  'remove-orphans-after': { type: 'string', default: '0', help: 'remove volume data, images and snapshot copies that no store object has owned for this long (e.g. 24h); 0: only report them (log line, tscsi_node_orphaned_data)' },
  'metrics-socket': { type: 'string', default: '', help: 'unix socket serving Prometheus metrics to the sidecar (default: <csi socket>-metrics.sock beside the CSI socket; off to disable). The node plugin opens no TCP port' },
  'co-path-prefix': { type: 'string', multiple: true, help: 'a folder staging and target paths must resolve into, symlinks included (repeatable; default /var/lib/kubelet)' },
  'registration-dir': { type: 'string', default: '', help: 'serve kubelet plugin registration in this folder (e.g. /var/lib/kubelet/plugins_registry), making node-driver-registrar optional; empty: off' },
  'socket-group': { type: 'string', default: '', help: 'numeric group id given the CSI and metrics sockets (mode 0660), so a non-root sidecar in that group can connect; empty: leave them as created' },
  'kubelet-registration-path': { type: 'string', default: '', help: 'the CSI socket path as kubelet on the host sees it (default: the --endpoint socket path)' },
  ...STORE_FLAGS,
  'log-level': LOG_LEVEL_FLAG,
} as const

function fail(message: string): never {
  throw new FlagError(message)
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(path.resolve(p))
  } catch {
    return path.resolve(p)
  }
}

/** The plugin keeps owning the socket; members of gid may connect (connect(2) needs write permission). */
function shareSocket(sock: string, gid: number): void {
  chownSync(sock, process.getuid?.() ?? 0, gid)
  chmodSync(sock, 0o660)
}

function parsePools(values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const v of values) {
    const m = /^([^=]+)=(\/.+)$/.exec(v)
    if (!m?.[1] || !m[2]) fail(`--pool ${JSON.stringify(v)}: expected NAME=/ABSOLUTE/PATH`)
    if (!POOL_NAME.test(m[1]) || m[1] === DEFAULT_POOL) fail(`--pool ${JSON.stringify(v)}: the name must be lower-case letters, digits and '-' (at most 32), and not "default" (that is --data-root)`)
    if (out[m[1]]) fail(`--pool ${m[1]} is given twice`)
    out[m[1]] = path.resolve(m[2])
  }
  return out
}

runMain(async () => {
  const f = parseFlags(process.argv.slice(2), NODE_FLAGS)
  const driverName = checkDriverName(f.drivername)
  const endpoint = parseEndpoint(f.endpoint)
  const nodeId = f.nodeid || os.hostname()
  if (!isNodeId(nodeId)) throw new FlagError(`--nodeid ${JSON.stringify(nodeId)}: letters, digits, '.', '_' and '-' only, at most 128`)
  const log = createLogger(parseLogLevel(f['log-level']), 'tscsi-node')
  const layout = new Layout(path.resolve(f['data-root']), parsePools(f.pool))
  for (const pool of layout.pools.keys()) await prepareDataRoot(layout.volumesDirOf(pool), layout.imagesDirOf(pool))
  const metrics = processMetrics('node')
  const deps = nodeDeps({
    nodeId, maxVolumes: parseCount('max-volumes-per-node', f['max-volumes-per-node']), layout,
    // The state dir, like the pools, is a private root: no CO path can lead into the scratch folder.
    mounter: instrumentMounter(nativeMounter({ scratchDir: path.join(path.resolve(f['state-dir']), 'bind-scratch'), log }), metrics.registry),
    log, quota: nativeQuota(layout, log),
    coPathPrefixes: (f['co-path-prefix'].length > 0 ? f['co-path-prefix'] : ['/var/lib/kubelet']).map(realOrSelf),
    privateRoots: [realOrSelf(path.resolve(f['state-dir']))],
  })
  // The one full read of the mount table: what a previous run of this plugin left mounted.
  const table = readMountInfo()
  detachOrphanLoops(table, layout, log)
  deps.index.replaceAll(new Map([
    ...[...layout.pools.keys()].flatMap((p) => [...volumeMounts(table, realpathSync(layout.volumesDirOf(p)))]),
    ...imageMounts(table, layout),
    ...nfsMounts(table, readNotes(layout)),
  ]))
  log.info({ mountedVolumes: deps.index.volumes().length }, 'mount index rebuilt')
  const store = await openStore(f.store, { stateDir: f['state-dir'], kubeconfig: f.kubeconfig, nodeId }, log)
  const orphans = new OrphanWatch({ deps, store, log, removeAfterMs: parseDuration('remove-orphans-after', f['remove-orphans-after']) })
  const realiser = new Realiser({
    store, deps, log, capacityIntervalMs: parseDuration('capacity-interval', f['capacity-interval']),
    metrics: nodeMetrics(metrics.registry, store, deps, orphans), orphans,
  })
  await realiser.start()
  const metricsPath = metricsSocketFlag(f['metrics-socket'], endpoint.socketPath, metricsSocketFor)
  const metricsServer = metricsPath ? await serveMetrics(metrics.registry, metricsPath, log) : undefined
  const running = await listen(buildNode(deps, { driverName, controllerService: f['has-controller'], observe: metrics.observe }), endpoint)
  if (f['socket-group']) {
    const gid = parseCount('socket-group', f['socket-group'])
    for (const sock of [endpoint.socketPath, metricsPath]) if (sock) shareSocket(sock, gid)
  }
  const registration = f['registration-dir']
    ? await serveRegistration({
      driverName, log, registrationDir: path.resolve(f['registration-dir']),
      kubeletEndpoint: f['kubelet-registration-path'] || endpoint.socketPath || fail('--registration-dir needs a unix --endpoint or --kubelet-registration-path'),
    })
    : undefined
  log.info({ endpoint: running.address, metricsSocket: metricsPath, nodeId, pools: Object.fromEntries(layout.pools) }, 'node plugin serving')
  const stop = (sig: string): void => {
    log.info({ signal: sig }, 'draining in-flight calls')
    realiser.stop()
    void running.close().then(() => registration?.close()).then(() => metricsServer?.close()).then(() => store.close()).then(() => process.exit(0))
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
})
