// The two drivers under test, started the same way a CO would find them: unix sockets, real
// processes, nothing faked.
//   tscsi     controller + node plugin (split sockets, local store) + the metrics sidecar
//   hostpath  kubernetes-csi's hostpathplugin, one process serving Identity, Controller and Node
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { CsiClient } from '../common/client.js'
import { benchClient, waitReady } from './csi.js'
import { DIST } from './paths.js'
import { spawnProc, stopProc, type Proc } from './procs.js'

export type DriverName = 'tscsi' | 'hostpath'

export interface Driver {
  name: DriverName
  controller: CsiClient<'Controller'>
  node: CsiClient<'Node'>
  /** Identity on the node plugin's socket (Probe is the round-trip floor, bench/floors.ts). */
  identity: CsiClient<'Identity'>
  /** The processes that serve CSI (their CPU time is the driver's cost). */
  servers: Proc[]
  /** Every process started for this driver, sidecar included. */
  procs: Proc[]
  /** Where a volume's data lives on disk (to check that a write went through the target). */
  volumePath(id: string): string
  /** The node plugin's log file (tscsi logs one line per RPC with its server-side time). */
  nodeLog: string
  /** Log files that carry one line per RPC with its server-side time (tscsi's two; none for hostpath). */
  rpcLogs: string[]
  stop(): Promise<void>
}

export const NODE_ID = 'bench-node'

export interface TscsiOptions {
  dir: string
  /** Extra node.js flags for every tscsi process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  nodeFlags: string[]
  logLevel: string
  /** Also start the metrics sidecar (dist/sidecar/main.js) for the node plugin. */
  sidecar: boolean
  /** The folder the harness's staging and target paths live in (the node's --co-path-prefix, where it has one). */
  coPaths: string
}

let coPathFlag: boolean | undefined
/** Whether this build of the node plugin has --co-path-prefix (CO paths outside /var/lib/kubelet are refused then). */
function hasCoPathFlag(): boolean {
  if (coPathFlag === undefined) {
    // --help prints to stdout or stderr and may exit non-zero; look at both.
    const r = spawnSync(process.execPath, [path.join(DIST, 'node/main.js'), '--help'], { encoding: 'utf8' })
    coPathFlag = `${r.stdout}${r.stderr}`.includes('--co-path-prefix')
  }
  return coPathFlag
}

export interface TscsiDriver extends Driver {
  /** The folders it was started with, to start it again on the same store and data. */
  options: TscsiOptions
  stateDir: string
  dataRoot: string
  controllerSocket: string
  controllerProc: Proc
  nodeProc: Proc
  sidecarProc?: Proc
  /** http://127.0.0.1:PORT of the sidecar. */
  sidecarUrl?: string
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

async function stopAll(procs: Proc[], clients: { close(): void }[]): Promise<void> {
  for (const c of clients) c.close()
  await Promise.all(procs.map((p) => stopProc(p)))
}

/** The Node flags an entrypoint's `#!/usr/bin/env -S node FLAGS` line names. */
function shebangFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0]!
  return /^#!\/usr\/bin\/env -S node (.+)$/.exec(first)?.[1]!.split(' ').filter(Boolean) ?? []
}

export async function startTscsi(o: TscsiOptions): Promise<TscsiDriver> {
  mkdirSync(o.dir, { recursive: true })
  const state = path.join(o.dir, 'state')
  const data = path.join(o.dir, 'data')
  const csock = path.join(o.dir, 'controller.sock')
  const nsock = path.join(o.dir, 'node.sock')
  // Each entrypoint runs with the Node flags its shebang names, as the image runs it.
  const node = (script: string): string[] => [...o.nodeFlags, ...shebangFlags(path.join(DIST, script)), path.join(DIST, script)]
  const procs: Proc[] = []
  const clients: { close(): void }[] = []
  try {
    const controllerProc = spawnProc('tscsi-controller', process.execPath, [
      ...node('controller/main.js'), '--endpoint', `unix://${csock}`, '--state-dir', state, '--log-level', o.logLevel,
    ], path.join(o.dir, 'controller.log'))
    procs.push(controllerProc)
    const nodeProc = spawnProc('tscsi-node', process.execPath, [
      ...node('node/main.js'), '--endpoint', `unix://${nsock}`, '--state-dir', state, '--data-root', data, '--nodeid', NODE_ID, '--log-level', o.logLevel,
      ...(hasCoPathFlag() ? ['--co-path-prefix', o.coPaths] : []),
    ], path.join(o.dir, 'node.log'))
    procs.push(nodeProc)
    await Promise.all([waitReady(csock, 30_000, controllerProc.alive), waitReady(nsock, 30_000, nodeProc.alive)])
    let sidecarProc: Proc | undefined
    let sidecarUrl: string | undefined
    if (o.sidecar) {
      const port = await freePort()
      sidecarProc = spawnProc('tscsi-metrics', process.execPath, [
        ...node('sidecar/main.js'), '--csi-address', nsock, '--http-endpoint', `127.0.0.1:${port}`, '--log-level', o.logLevel,
      ], path.join(o.dir, 'sidecar.log'))
      procs.push(sidecarProc)
      sidecarUrl = `http://127.0.0.1:${port}`
      await waitHttp(`${sidecarUrl}/healthz`, 30_000, sidecarProc.alive)
    }
    const controller = benchClient('Controller', csock)
    const nodeClient = benchClient('Node', nsock)
    const identity = benchClient('Identity', nsock)
    clients.push(controller, nodeClient, identity)
    return {
      name: 'tscsi', controller, node: nodeClient, identity, servers: [controllerProc, nodeProc], procs, options: o, stateDir: state, dataRoot: data, controllerSocket: csock,
      controllerProc, nodeProc, ...(sidecarProc && { sidecarProc }), ...(sidecarUrl && { sidecarUrl }),
      volumePath: (id) => path.join(data, 'volumes', id),
      nodeLog: nodeProc.logFile,
      rpcLogs: [controllerProc.logFile, nodeProc.logFile],
      stop: () => stopAll(procs, clients),
    }
  } catch (e) {
    await stopAll(procs, clients)
    throw e
  }
}

async function waitHttp(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
      if (res.status === 200) return
    } catch {
      /* not listening yet */
    }
    if (!alive()) throw new Error(`the process serving ${url} exited`)
    if (Date.now() > until) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export interface HostpathOptions {
  dir: string
  bin: string
}

export interface HostpathDriver extends Driver {
  proc: Proc
}

export async function startHostpath(o: HostpathOptions): Promise<HostpathDriver> {
  mkdirSync(o.dir, { recursive: true })
  const state = path.join(o.dir, 'state')
  mkdirSync(state, { recursive: true })
  const sock = path.join(o.dir, 'csi.sock')
  // Defaults otherwise, as its own deploy/ manifests run it (klog at -v=0 logs no per-RPC line).
  const proc = spawnProc('hostpathplugin', o.bin, [
    `--endpoint=unix://${sock}`, `--nodeid=${NODE_ID}`, `--statedir=${state}`, '--drivername=hostpath.csi.k8s.io',
  ], path.join(o.dir, 'hostpath.log'))
  const clients: { close(): void }[] = []
  try {
    await waitReady(sock, 30_000, proc.alive)
    const controller = benchClient('Controller', sock)
    const nodeClient = benchClient('Node', sock)
    const identity = benchClient('Identity', sock)
    clients.push(controller, nodeClient, identity)
    return {
      name: 'hostpath', controller, node: nodeClient, identity, servers: [proc], procs: [proc], proc,
      volumePath: (id) => path.join(state, id),
      nodeLog: proc.logFile,
      rpcLogs: [],
      stop: () => stopAll([proc], clients),
    }
  } catch (e) {
    await stopAll([proc], clients)
    throw e
  }
}
