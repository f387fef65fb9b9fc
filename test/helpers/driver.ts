// Starts the real controller and node plugin processes (from dist/, built by `npm test`) on unix
// sockets in a test folder, and gives CSI clients (common/client.ts) for them. Used by the root-only
// end-to-end tests; nothing here is faked.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { csiClient, type CsiService } from '../../common/client.js'
import type { ClientRequestOf, ClientResponseOf, MethodName } from '../../common/protocol.js'
import type { VolumeCapability, _csi_v1_VolumeCapability_AccessMode_Mode__Output } from '../../proto/gen/csi/v1/VolumeCapability.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export function requireBuilt(): void {
  if (!existsSync(path.join(ROOT, 'dist/node/main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does) before the e2e tests')
}

export type Service = CsiService
export type Method<S extends Service> = MethodName<S>

/**
 * A response with every message field present: the generated `__Output` type says an unset
 * message is null, and a test that reads one the driver must set fails on it either way (a
 * TypeError fails the test). Oneof members stay optional, as only one of them is set.
 */
export type Present<T> = T extends (infer U)[] ? Present<U>[] : T extends object ? { [K in keyof T]: Present<Exclude<T[K], null>> } : T

/** common/client.ts's client, its responses read as Present. Requests are typed as there. */
export type CsiClient<S extends Service> = {
  [M in Method<S>]: (request: ClientRequestOf<S, M>, deadlineMs?: number) => Promise<Present<ClientResponseOf<S, M>>>
} & { close(): void }

/** A client of a driver process's unix socket, with the tests' 30 s default deadline. */
export function client<S extends Service>(service: S, socket: string): CsiClient<S> {
  return csiClient(service, `unix://${socket}`, { deadlineMs: 30_000 }) as unknown as CsiClient<S>
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
  if (!s) {
    // Whatever a test's teardown missed (processes started in a sub-folder of the rig, tests
    // without a rig) goes when the test process ends: /tmp keeps nothing of ours.
    if (socketDirs.size === 0) process.once('exit', () => { for (const d of socketDirs.values()) rmSync(d, { recursive: true, force: true }) })
    socketDirs.set(dir, (s = mkdtempSync('/tmp/tscsi-sock-')))
  }
  return s
}

export interface SpawnOptions {
  kind: 'controller' | 'node'
  /** The test folder: state dir, data root and CO paths live in it. */
  dir: string
  socket: string
  extra?: string[]
  cwd?: string
  /** Where dist/ is (the crash harness may run a private build). */
  distRoot?: string
  nodeId?: string
  readyTimeoutMs?: number
  pollMs?: number
  /** node's own flags (before the script), e.g. heap limits. */
  nodeFlags?: string[]
  /** Called as soon as the process exists, before it serves (so a test can kill it meanwhile). */
  onSpawn?: (p: Proc) => void
}

/**
 * Spawns a real controller or node plugin and waits until its socket answers Probe with ready.
 * The one place the tests start driver processes.
 */
export async function spawnDriver(o: SpawnOptions): Promise<Proc> {
  const root = o.distRoot ?? ROOT
  if (root === ROOT) requireBuilt()
  mkdirSync(o.dir, { recursive: true })
  const args = [path.join(root, `dist/${o.kind}/main.js`), '--endpoint', `unix://${o.socket}`, '--state-dir', path.join(o.dir, 'state'), '--log-level', 'warn']
  // CO paths in tests live in the test folder (a cluster's live under /var/lib/kubelet).
  if (o.kind === 'node') args.push('--data-root', path.join(o.dir, 'data'), '--nodeid', o.nodeId ?? 'e2e-node', '--co-path-prefix', o.dir)
  // Without tap's NODE_OPTIONS: its process-info preload makes each driver process take seconds
  // to start serving, and it turns on source maps, so a driver parses every source map it loads
  // (a controller on the Kubernetes store held ~125 MB of them). Deleting the variable from env
  // is not enough: @tapjs/processinfo wraps child_process and puts its loader back, so `env -u`
  // drops it at the one step the wrapper cannot see, the exec of node (same pid).
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ...(o.nodeFlags ?? []), ...args, ...(o.extra ?? [])], { cwd: o.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let logs = ''
  child.stdout!.on('data', (b) => (logs += b))
  child.stderr!.on('data', (b) => (logs += b))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  const proc: Proc = { child, socket: o.socket, logs: () => logs, exited }
  o.onSpawn?.(proc)
  const until = Date.now() + (o.readyTimeoutMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${o.kind} exited at start-up:\n${logs}`)
    if (existsSync(o.socket)) {
      const id = client('Identity', o.socket)
      try {
        const res = await id.Probe({}, 1000)
        if (res.ready?.value) break
      } catch {
        /* not serving yet */
      } finally {
        id.close()
      }
    }
    if (Date.now() > until) {
      child.kill('SIGKILL')
      throw new Error(`${o.kind} never became ready:\n${logs}`)
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 20))
  }
  return proc
}

export async function start(kind: 'controller' | 'node', dir: string, extra: string[] = [], nodeFlags?: string[]): Promise<Proc> {
  // Test folders have long paths; unix socket paths must stay under 108 bytes.
  return spawnDriver({ kind, dir, extra, socket: path.join(socketDir(dir), `${kind}.sock`), ...(nodeFlags && { nodeFlags }) })
}

export async function kill9(p: Proc): Promise<void> {
  p.child.kill('SIGKILL')
  await p.exited
}

/** An access mode by name, as the loader options send and receive enums. */
export type AccessMode = _csi_v1_VolumeCapability_AccessMode_Mode__Output

export const mountCap = (mode: AccessMode = 'SINGLE_NODE_WRITER') => ({
  mount: { fs_type: '', mount_flags: [] as string[], volume_mount_group: '' },
  access_mode: { mode },
  access_type: 'mount' as const,
}) satisfies VolumeCapability

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

/** A test rig with the real controller and node plugin running in it, and clients for both. */
export async function startDriver(t: Parameters<typeof testRig>[0], nodeFlags: string[] = []): Promise<{
  rig: ReturnType<typeof testRig>; dir: string; ctl: Proc; node: Proc; c: CsiClient<'Controller'>; n: CsiClient<'Node'>
}> {
  const rig = testRig(t)
  const dir = rig.dir
  const ctl = await start('controller', dir)
  const node = await start('node', dir, nodeFlags)
  rig.procs.push(ctl, node)
  const c = client('Controller', ctl.socket)
  const n = client('Node', node.socket)
  t.teardown(() => { c.close(); n.close() })
  await nodeSeen(c)
  return { rig, dir, ctl, node, c, n }
}

/**
 * Waits until the controller has seen a node's capacity. A node is ready once it has written its
 * status, but the controller learns of it through its store's watch a moment later (inotify, a
 * read), so a CreateVolume sent at once can meet RESOURCE_EXHAUSTED "none has reported its
 * capacity yet" on a loaded machine. A CO retries that; a test must not depend on the race.
 */
export async function nodeSeen(c: CsiClient<'Controller'>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const res = await c.GetCapacity({ volume_capabilities: [mountCap()], parameters: { kind: 'dir' } })
    if (BigInt(res.available_capacity || '0') > 0n) return
    if (Date.now() > until) throw new Error(`the controller saw no node's capacity within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * A replayable random stream for crash tests: TSCSI_CRASH_SEED (else fallback) seeds it, and the
 * test's output names the seed so a failure can be replayed.
 */
export function crashRandom(t: { comment(...args: unknown[]): void }, fallback: number): () => number {
  const first = Number(process.env.TSCSI_CRASH_SEED ?? fallback)
  let seed = first
  t.comment(`seed ${first} (set TSCSI_CRASH_SEED to replay)`)
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
}
