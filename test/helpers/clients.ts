// The real CSI clients of the client-matrix test (test/client-matrix.test.ts), built into .tools by
// scripts/client-tools.sh, and driver processes serving on tcp:// endpoints as seed 003 runs them
// (spawnDriver in driver.ts serves unix sockets only).
import { execFile, spawn, spawnSync } from 'node:child_process'
import path from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { csiPackage } from '../../common/grpc.js'
import { ROOT, requireBuilt, type Proc } from './driver.js'

export const CSC_GRPC119 = path.join(ROOT, '.tools/bin/csc-grpc119')
export const CSC_GRPC_CURRENT = path.join(ROOT, '.tools/bin/csc-grpc-current')
// The venv's python3 is Debian's /usr/bin/python3 (package python3-minimal) with grpcio beside it.
export const PYTHON = path.join(ROOT, '.tools/py/bin/python3')
const PY_STUBS = path.join(ROOT, '.tools/py/stubs')
const PY_CLIENT = path.join(ROOT, 'test/clients/csi_client.py')

/**
 * Builds the clients (a no-op when the stamps match). undefined when they are ready; else why
 * not, and whether that is a machine without the toolchain (a skip) or a broken build (a failure).
 */
export function buildClients(): { skip?: string; fail?: string } | undefined {
  if (spawnSync('go', ['version']).status !== 0) return { skip: 'go is not installed: the Go clients are built from the module proxy' }
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/client-tools.sh')], { encoding: 'utf8', timeout: 900_000 })
  if (r.status === 0) return undefined
  return { fail: `scripts/client-tools.sh failed (${r.status ?? r.signal}):\n${r.stderr}` }
}

export interface Outcome { code: number; out: any; err: string }

/** Runs a client that prints its answer as JSON and exits with the gRPC code (the VM suites name the program by its path). */
export function run(program: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(program, args, { encoding: 'utf8', env, timeout: 120_000 }, (e, stdout, stderr) => {
      const code = e ? (typeof e.code === 'number' ? e.code : -1) : 0
      resolve({ code, out: code === 0 ? JSON.parse(stdout) : undefined, err: stderr.trim() })
    })
  })
}

/** csc-style: `csc-grpc119 --endpoint E [flags] group command [arg]`; exits with the gRPC code. */
export function csc119(endpoint: string, ...args: string[]): Promise<Outcome> {
  return run(CSC_GRPC119, ['--endpoint', endpoint, ...args])
}

/** The same program on a current grpc-go. */
export function cscCurrent(endpoint: string, ...args: string[]): Promise<Outcome> {
  return run(CSC_GRPC_CURRENT, ['--endpoint', endpoint, ...args])
}

/** grpcio: a grpcio target (127.0.0.1:PORT or unix:///path), a service, a method, a request. */
export function python(target: string, service: string, method: string, req: object = {}): Promise<Outcome> {
  return run(PYTHON, [PY_CLIENT, target, service, method, JSON.stringify(req)], { ...process.env, PYTHONPATH: PY_STUBS })
}

/** grpc-js, as the other tests use it, on any grpc-js target. */
export function grpcJs(target: string, service: 'Identity' | 'Controller' | 'Node', method: string, req: object = {}): Promise<Outcome> {
  const Ctor = csiPackage()[service]
  const c = new Ctor(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>
  return new Promise((resolve) => {
    c[method]!.call(c, req, { deadline: Date.now() + 60_000 }, (e: grpc.ServiceError | null, res: unknown) => {
      c.close()
      resolve(e ? { code: e.code, out: undefined, err: e.details } : { code: 0, out: res, err: '' })
    })
  })
}

/**
 * Starts a controller or node plugin on `tcp://127.0.0.1:0` and resolves once it logs the port it
 * serves; the endpoint it returns is the tcp:// form csc is given in seed 003.
 */
export async function spawnTcp(kind: 'controller' | 'node', dir: string, nodeId = 'e2e-node'): Promise<Proc & { endpoint: string }> {
  requireBuilt()
  const args = [path.join(ROOT, `dist/${kind}/main.js`), '--endpoint', 'tcp://127.0.0.1:0', '--state-dir', path.join(dir, 'state'), '--log-level', 'info', '--metrics-socket', 'off']
  if (kind === 'node') args.push('--data-root', path.join(dir, 'data'), '--nodeid', nodeId, '--co-path-prefix', dir)
  const env = { ...process.env }
  delete env.NODE_OPTIONS // tap's preload makes each process take seconds to start serving
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let logs = ''
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  const endpoint = await new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer): void => {
      logs += b
      const m = /"endpoint":"(127\.0\.0\.1:\d+)"[^\n]*serving/.exec(logs)
      if (m) resolve(`tcp://${m[1]}`)
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    void exited.then((code) => reject(new Error(`${kind} exited (${code}) before serving:\n${logs}`)))
  })
  return { child, socket: '', logs: () => logs, exited, endpoint }
}
