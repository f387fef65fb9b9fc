// The two real driver processes of a crash run, each restartable in place: kill -9 one, start its
// successor on the same state dir, data root and socket path. Calls pick up a fresh client after
// a restart (a grpc-js channel that saw its socket vanish backs off for seconds before redialling).
import { mkdtempSync, rmSync } from 'node:fs'
import path from 'node:path'
import { client, ROOT, spawnDriver, type CsiClient, type Proc } from '../driver.js'

export type Role = 'controller' | 'node'
/** The CSI service each role's process serves. */
const SERVICE = { controller: 'Controller', node: 'Node' } as const
export type RoleService<R extends Role> = (typeof SERVICE)[R]
export type RoleClient<R extends Role> = CsiClient<RoleService<R>>

/**
 * The tree whose dist/ is run: this checkout, or CRASH_DIST_ROOT (a separate build, so a long run
 * is not disturbed by a rebuild of the shared dist/ halfway through).
 */
const DIST_ROOT = process.env.CRASH_DIST_ROOT || ROOT

/** Lines of each role's logs kept for a failure report (the current and the previous processes). */
const LOG_TAIL = 6000

export class Cluster {
  private readonly procs: Partial<Record<Role, Proc>> = {}
  private readonly clients: Partial<Record<Role, { close(): void }>> = {}
  private readonly up: Partial<Record<Role, Promise<void>>> = {}
  private readonly pastLogs: Record<Role, string> = { controller: '', node: '' }
  /** Bumped at every kill: a call that saw its process's epoch change was cut by the kill. */
  readonly epoch: Record<Role, number> = { controller: 0, node: 0 }
  readonly sockDir = mkdtempSync('/tmp/tscsi-crash-')
  startMs = 0
  starts = 0

  /** `started` collects every process ever started, for the test's teardown (testRig's procs). */
  constructor(readonly dir: string, readonly started: Proc[] = []) {}

  async startAll(): Promise<void> {
    await Promise.all([this.start('controller'), this.start('node')])
  }

  /** Resolves when role serves (at once when it is up). */
  ready(role: Role): Promise<void> {
    return this.up[role] ?? Promise.reject(new Error(`${role} was never started`))
  }

  /** A client for role's current process (the same one until the next restart). */
  client<R extends Role>(role: R): RoleClient<R> {
    // Stored under its role, a client is that role's service's (the compiler cannot follow R here).
    return (this.clients[role] ??= client(SERVICE[role], this.socket(role))) as RoleClient<R>
  }

  pid(role: Role): number | undefined {
    return this.procs[role]?.child.pid
  }

  /** kill -9, then a successor; resolves once the successor serves. */
  async killAndRestart(role: Role): Promise<void> {
    const p = this.procs[role]
    if (!p) throw new Error(`${role} is not running`)
    this.epoch[role]++
    let restarted!: () => void
    let failed!: (e: unknown) => void
    this.up[role] = new Promise<void>((res, rej) => { restarted = res; failed = rej })
    this.up[role]!.catch(() => undefined)
    p.child.kill('SIGKILL')
    await p.exited
    this.pastLogs[role] = (this.pastLogs[role] + p.logs()).slice(-LOG_TAIL)
    this.clients[role]?.close()
    delete this.clients[role]
    try {
      await this.spawnServing(role)
      restarted()
    } catch (e) {
      failed(e)
      throw e
    }
  }

  logs(role: Role): string {
    return (this.pastLogs[role] + '\n--- current process ---\n' + (this.procs[role]?.logs() ?? '')).slice(-LOG_TAIL)
  }

  close(): void {
    for (const c of Object.values(this.clients)) c?.close()
    rmSync(this.sockDir, { recursive: true, force: true })
  }

  private socket(role: Role): string {
    return path.join(this.sockDir, `${role}.sock`)
  }

  private async start(role: Role): Promise<void> {
    this.up[role] = this.spawnServing(role)
    await this.up[role]
  }

  private async spawnServing(role: Role): Promise<void> {
    const t0 = Date.now()
    const dir = this.dir
    const socket = this.socket(role)
    // Gone before the spawn, so the socket's reappearance means the successor listens.
    rmSync(socket, { force: true })
    // Two minutes to serve: a Node.js start takes about half a minute under TCG in the VM suite,
    // more on a loaded machine (a CI run of 6.12 once met 30 s). Only a failure waits that long.
    await spawnDriver({
      kind: role, dir, socket, distRoot: DIST_ROOT, nodeId: 'crash-node', readyTimeoutMs: 120_000, pollMs: 10,
      onSpawn: (proc) => {
        this.procs[role] = proc
        this.started.push(proc)
      },
    })
    this.starts++
    this.startMs += Date.now() - t0
  }
}
