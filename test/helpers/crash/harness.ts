// The crash-injection run: rounds of a few CO operations against the real controller and node
// plugin, during each of which one of them is killed with SIGKILL (most often the node plugin,
// which holds mounts, loop devices and copies) and restarted in place; the interrupted calls are
// repeated until they converge, and then every invariant is checked.
//
// Replay: two PRNG streams come from the seed, one for the operations (so the sequence of
// operations depends on the seed alone) and one for the kills (victim, the how-many-th RPC of
// the round it is aimed at, and a delay after that RPC starts). Timing still decides exactly
// which instruction a kill lands on, so a replay repeats the same kill points, not the same
// nanoseconds.
import { appendFileSync } from 'node:fs'
import { prng } from '../rpc-outcome.js'
import { Cluster, type Role } from './cluster.js'
import { checkInvariants } from './invariants.js'
import { Model } from './model.js'
import { runOp, Violation, type Ctx } from './ops.js'

export interface CrashOptions {
  seed: number
  kills: number
  dir: string
  /** The share of kills aimed at the node plugin (default 0.7). */
  nodeShare?: number
  /** Progress lines (every 25 kills). */
  progress?: (line: string) => void
  /** Append the whole op log here as it happens. */
  logFile?: string
  /** The processes to run (made by the caller so its teardown can reach them even after a throw). */
  cluster?: Cluster
}

export interface CrashReport {
  seed: number
  kills: number
  killsBy: Record<Role, number>
  rounds: number
  ops: number
  rpcs: number
  retries: number
  ms: number
  violations: { round: number | 'final'; kind: string; messages: string[] }[]
  /** How often each RPC was in flight at the instant of a kill; "idle" when none was. */
  atKill: Record<string, number>
  codes: Record<string, number>
  meanStartMs: number
  /** The op log's last lines and the processes' logs, for a failure report. */
  tail: string
  logs: Record<Role, string>
}

const TAIL_LINES = 150

export async function runCrash(o: CrashOptions): Promise<CrashReport> {
  const t0 = Date.now()
  const cluster = o.cluster ?? new Cluster(o.dir)
  const model = new Model(o.dir)
  const opRng = prng(o.seed)
  const killRng = prng((o.seed ^ 0x5bd1e995) >>> 0)
  const tail: string[] = []
  let round = 0
  const log = (line: string): void => {
    const l = `[r${round}] ${line}`
    tail.push(l)
    if (tail.length > TAIL_LINES) tail.shift()
    if (o.logFile) appendFileSync(o.logFile, l + '\n')
  }
  const ctx: Ctx = { cluster, model, log, onRpc: () => undefined, stats: { rpcs: 0, retries: 0, codes: {} }, inFlight: new Map() }
  const report: CrashReport = {
    seed: o.seed, kills: 0, killsBy: { controller: 0, node: 0 }, rounds: 0, ops: 0, rpcs: 0, retries: 0, ms: 0, violations: [],
    atKill: {}, codes: ctx.stats.codes, meanStartMs: 0, tail: '', logs: { controller: '', node: '' },
  }
  const finish = (): CrashReport => {
    Object.assign(report, { rpcs: ctx.stats.rpcs, retries: ctx.stats.retries, ms: Date.now() - t0, meanStartMs: Math.round(cluster.startMs / Math.max(1, cluster.starts)) })
    report.tail = tail.join('\n')
    report.logs = { controller: cluster.logs('controller'), node: cluster.logs('node') }
    return report
  }
  // Anything else thrown (a process that would not start again, say) is reported the same way,
  // with the op log that led to it.
  const violation = (where: number | 'final', e: unknown): void => {
    const kind = e instanceof Violation ? e.kind : 'error'
    const message = e instanceof Violation ? e.message : String((e as Error)?.stack ?? e)
    log(`VIOLATION (${kind}): ${message}`)
    report.violations.push({ round: where, kind, messages: [message] })
  }

  await cluster.startAll()
  while (report.kills < o.kills) {
    round++
    report.rounds = round
    const victim: Role = killRng.chance(o.nodeShare ?? 0.7) ? 'node' : 'controller'
    // The kill is aimed at the aimAt-th RPC of the round that can hurt the victim (the node
    // works for controller calls too, realising what they record); ops run until that RPC has
    // started, then `extra` more. First attempts are counted, not retries, so which ops make up
    // a round depends on the seed alone.
    const aimAt = killRng.int(3)
    const extra = killRng.int(2)
    // Node RPCs take a few ms, controller calls that wait for the node tens to hundreds: most
    // delays are short enough to land inside the aimed call, some reach the next ones.
    const spread = killRng.next()
    const delay = spread < 0.55 ? killRng.int(3) : spread < 0.85 ? killRng.int(30) : killRng.int(200)
    let seen = 0
    let trigger!: () => void
    const killed = new Promise<void>((resolve, reject) => {
      let armed = false
      trigger = () => {
        if (armed) return
        armed = true
        setTimeout(() => {
          const busy = [...ctx.inFlight.keys()]
          for (const k of busy.length > 0 ? busy : ['idle']) report.atKill[k] = (report.atKill[k] ?? 0) + 1
          log(`KILL -9 ${victim} (pid ${cluster.pid(victim)}) while ${busy.join(', ') || 'idle'}`)
          cluster.killAndRestart(victim).then(() => log(`${victim} restarted (pid ${cluster.pid(victim)})`)).then(resolve, reject)
        }, delay)
      }
    })
    let aimed = false
    ctx.onRpc = (role) => {
      if ((victim === 'node' || role === 'controller') && seen++ === aimAt) {
        aimed = true
        trigger()
      }
    }
    try {
      // A round without the aimed RPC (a stretch of node calls while the controller is the
      // victim) stops after a few ops and kills the victim idle.
      for (let i = 0; !aimed && i < 6; i++) {
        report.ops++
        await runOp(ctx, model.pick(opRng))
      }
      for (let i = 0; i < extra; i++) {
        report.ops++
        await runOp(ctx, model.pick(opRng))
      }
      trigger()
      await killed
      report.kills++
      report.killsBy[victim]++
      const bad = await checkInvariants(o.dir, model, cluster)
      if (bad.length > 0) {
        for (const b of bad) log(`VIOLATION: ${b}`)
        report.violations.push({ round, kind: 'invariant', messages: bad })
      }
    } catch (e) {
      violation(round, e)
      trigger()
      await killed.catch(() => undefined)
    }
    if (report.violations.length > 0) return finish()
    if (report.kills % 25 === 0) o.progress?.(`${report.kills} kills, ${report.ops} ops, ${Math.round((Date.now() - t0) / 1000)} s`)
  }

  // The CO winds everything down; afterwards nothing may be left at all.
  round++
  log('wind-down')
  ctx.onRpc = () => undefined
  try {
    for (const v of [...model.vols]) {
      if (v.published) await runOp(ctx, { op: 'unpublish', vol: v })
      if (v.staged) await runOp(ctx, { op: 'unstage', vol: v })
      await runOp(ctx, { op: 'delete', vol: v })
    }
    for (const s of [...model.snaps]) await runOp(ctx, { op: 'deleteSnapshot', snap: s })
    const bad = await checkInvariants(o.dir, model, cluster)
    if (bad.length > 0) report.violations.push({ round: 'final', kind: 'invariant', messages: bad })
  } catch (e) {
    violation('final', e)
  }
  return finish()
}
