// Starts the real controller and node plugin processes (from dist/, built by `npm test`) on unix
// sockets in a test folder, and gives promise-based CSI clients for them. Used by the root-only
// end-to-end tests; nothing here is faked.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import { csiPackage } from '../../common/grpc.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export function requireBuilt(): void {
  if (!existsSync(path.join(ROOT, 'dist/node/main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before the e2e tests')
}

export type Call = (req: Record<string, unknown>, deadlineMs?: number) => Promise<any>

/** A client whose methods return promises: client.CreateVolume({...}). */
export function client(service: 'Identity' | 'Controller' | 'Node', socket: string): Record<string, Call> & { close(): void } {
  const Ctor = csiPackage()[service]
  const c = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>
  const out: Record<string, Call> = {}
  for (const name of Object.keys(Ctor.service)) {
    out[name] = (req, deadlineMs = 30_000) =>
      new Promise((resolve, reject) =>
        c[name]!.call(c, req, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))),
      )
  }
  return Object.assign(out, { close: () => c.close() })
}

export interface Proc {
  child: ChildProcess
  socket: string
  logs: () => string
  exited: Promise<number | null>
}

const socketDirs = new Map<string, string>()
function socketDir(dir: string): string {
  let s = socketDirs.get(dir)
  if (!s) socketDirs.set(dir, (s = mkdtempSync('/tmp/tscsi-sock-')))
  return s
}

export async function start(kind: 'controller' | 'node', dir: string, extra: string[] = []): Promise<Proc> {
  requireBuilt()
  mkdirSync(dir, { recursive: true })
  // Test folders have long paths; unix socket paths must stay under 108 bytes.
  const socket = path.join(socketDir(dir), `${kind}.sock`)
  const args = [path.join(ROOT, `dist/${kind}/main.js`), '--endpoint', `unix://${socket}`, '--state-dir', path.join(dir, 'state'), '--log-level', 'warn']
  // CO paths in tests live in the test folder (a cluster's live under /var/lib/kubelet).
  if (kind === 'node') args.push('--data-root', path.join(dir, 'data'), '--nodeid', 'e2e-node', '--co-path-prefix', dir)
  // Without tap's NODE_OPTIONS: its process-info preload makes each driver process take seconds
  // to start serving.
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [...args, ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let logs = ''
  child.stdout!.on('data', (b) => (logs += b))
  child.stderr!.on('data', (b) => (logs += b))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  // Ready once the socket answers Probe.
  const id = client('Identity', socket)
  const until = Date.now() + 60_000
  for (;;) {
    try {
      const res = await id.Probe!({}, 1000)
      if (res.ready?.value) break
    } catch {
      if (child.exitCode !== null) throw new Error(`${kind} exited early:\n${logs}`)
    }
    if (Date.now() > until) throw new Error(`${kind} never became ready:\n${logs}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  id.close()
  return { child, socket, logs: () => logs, exited }
}

export async function kill9(p: Proc): Promise<void> {
  p.child.kill('SIGKILL')
  await p.exited
}

export const mountCap = (mode = 'SINGLE_NODE_WRITER') => ({
  mount: { fs_type: '', mount_flags: [], volume_mount_group: '' },
  access_mode: { mode },
  access_type: 'mount',
})

/** Mount points under dir, from the kernel's table (tests may read it; the node's hot path may not). */
export function mountsUnder(dir: string): string[] {
  return mountTable().map((f) => f[4] ?? '').filter((mp) => mp === dir || mp.startsWith(dir + '/'))
}

/** The mountinfo fields of the mount at mountPoint (topmost), or undefined. */
export function mountInfoOf(mountPoint: string): string[] | undefined {
  return mountTable().filter((f) => f[4] === mountPoint).pop()
}

function mountTable(): string[][] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '))
}

/**
 * Registers, before the test folder exists, a teardown that kills the processes and detaches any
 * mount left under the folder. Order matters: tap removes t.testdir() in its own teardown, and
 * removing a folder through a live bind mount would delete the volume's data behind it.
 */
export function testRig(t: { teardown(fn: () => unknown): void; testdir(): string }): { dir: string; procs: Proc[] } {
  const rig = { dir: '', procs: [] as Proc[] }
  t.teardown(async () => {
    for (const p of rig.procs) p.child.kill('SIGKILL')
    await Promise.all(rig.procs.map((p) => p.exited))
    if (!rig.dir) return
    const sockets = socketDirs.get(rig.dir)
    if (sockets) rmSync(sockets, { recursive: true, force: true })
    const { umount2, MNT } = await import('../../native/index.js')
    for (const mp of mountsUnder(rig.dir).reverse()) {
      try { umount2(mp, MNT.DETACH) } catch { /* already gone */ }
    }
  })
  rig.dir = t.testdir()
  return rig
}
