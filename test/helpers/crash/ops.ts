// Runs one CO operation against the real processes the way a CO does: each RPC is repeated with
// the same request until it succeeds, through kills and restarts. Only the answers the spec
// makes retryable are retried; any other error is a violation (after a crash every later call
// must succeed).
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import path from 'node:path'
import { status } from '@grpc/grpc-js'
import { codeName, outcome } from '../rpc-outcome.js'
import type { ClientRequestOf } from '../../../common/protocol.js'
import type { Method } from '../driver.js'
import type { Cluster, Role, RoleService } from './cluster.js'
import { describe, MiB, payload, REGION, type Model, type Op, type Snap, type Vol } from './model.js'

export class Violation extends Error {
  constructor(readonly kind: string, message: string) {
    super(message)
    this.name = 'Violation'
  }
}

export interface Ctx {
  cluster: Cluster
  model: Model
  log(line: string): void
  /** Called before the first attempt of every RPC (the kill is armed on these). */
  onRpc(role: Role, method: string): void
  stats: { rpcs: number; retries: number; codes: Record<string, number> }
  /** RPCs awaiting an answer right now, by "role method" (reported with each kill). */
  inFlight: Map<string, number>
}

/** A call that has not converged after this long is stuck: a liveness violation. */
const CONVERGE_MS = 45_000
const CALL_DEADLINE_MS = 20_000
/** A write through a target that takes this long is hung (a filesystem left frozen, say). */
const WRITE_HANG_MS = 10_000
// ABORTED: another operation is pending (the spec says retry); UNAVAILABLE: the process is down;
// DEADLINE_EXCEEDED: the controller gave up waiting for a node that was down.
const RETRY = new Set<number>([status.ABORTED, status.UNAVAILABLE, status.DEADLINE_EXCEEDED])
// What a call cut by the death of its server may surface as, besides UNAVAILABLE.
const CUT = new Set<number>([status.CANCELLED, status.INTERNAL, status.UNKNOWN])

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const mountCap = { mount: { fs_type: '', mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }
const capOf = (v: { kind: string }): object => (v.kind === 'block' ? blockCap : mountCap)

export async function call<R extends Role, M extends Method<RoleService<R>>>(ctx: Ctx, role: R, method: M, req: ClientRequestOf<RoleService<R>, M>): Promise<any> {
  const t0 = Date.now()
  ctx.stats.rpcs++
  ctx.onRpc(role, method)
  const label = `${role} ${method}`
  ctx.inFlight.set(label, (ctx.inFlight.get(label) ?? 0) + 1)
  try {
    return await attempts(ctx, role, method, req, t0)
  } finally {
    const n = ctx.inFlight.get(label)! - 1
    if (n === 0) ctx.inFlight.delete(label)
    else ctx.inFlight.set(label, n)
  }
}

async function attempts<R extends Role, M extends Method<RoleService<R>>>(ctx: Ctx, role: R, method: M, req: ClientRequestOf<RoleService<R>, M>, t0: number): Promise<any> {
  for (let attempt = 0; ; attempt++) {
    await ctx.cluster.ready(role)
    const epoch = ctx.cluster.epoch[role]
    const o = await outcome(ctx.cluster.client(role)[method](req, CALL_DEADLINE_MS))
    const name = codeName(o.code)
    if (o.code !== status.OK) ctx.stats.codes[`${method} ${name}`] = (ctx.stats.codes[`${method} ${name}`] ?? 0) + 1
    if (o.code === status.OK) {
      if (attempt > 0) ctx.log(`  ${method} converged after ${attempt} retries (${Date.now() - t0} ms)`)
      return o.res
    }
    const cut = ctx.cluster.epoch[role] !== epoch
    if (!RETRY.has(o.code) && !(cut && CUT.has(o.code))) {
      throw new Violation('call-failed', `${method} answered ${name}: ${o.message}\nrequest: ${JSON.stringify(req)}`)
    }
    if (attempt === 0 || o.code !== status.UNAVAILABLE) ctx.log(`  ${method} ${name}${cut ? ' (server killed)' : ''}: ${o.message.slice(0, 160)}`)
    if (Date.now() - t0 > CONVERGE_MS) throw new Violation('stuck', `${method} has not converged in ${CONVERGE_MS} ms; last answer ${name}: ${o.message}`)
    ctx.stats.retries++
    await sleep(o.code === status.UNAVAILABLE ? 5 : 20 + 10 * Math.min(attempt, 10))
  }
}

/** fn, or a violation if it takes longer than ms (it is left running: nothing can stop a hung write). */
async function within<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Violation('hung', `${what} did not finish in ${ms} ms`)), ms) })
  try {
    return await Promise.race([fn(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Reads back everything written through the volume at p (its target, staging or data dir) and compares. */
export async function verifyData(vol: { name: string; kind: string; data: Map<string, string> }, p: string, where: string): Promise<string[]> {
  const bad: string[] = []
  await within(WRITE_HANG_MS, `reading ${vol.name} at ${p}`, async () => {
    if (vol.kind === 'block') {
      const fh = await fsp.open(p, 'r')
      try {
        for (const [slot, want] of vol.data) {
          const buf = Buffer.alloc(REGION)
          await fh.read(buf, 0, REGION, Number(slot) * REGION)
          if (sha(buf) !== want) bad.push(`${vol.name}: region ${slot} read through ${where} has another checksum than was written`)
        }
      } finally {
        await fh.close()
      }
      return
    }
    for (const [file, want] of vol.data) {
      const got = await fsp.readFile(path.join(p, file)).then(sha, (e: NodeJS.ErrnoException) => e.code ?? String(e))
      if (got !== want) bad.push(`${vol.name}: ${file} read through ${where} ${/^[0-9a-f]{64}$/.test(got) ? 'has another checksum than was written' : `fails: ${got}`}`)
    }
  })
  return bad
}

export async function runOp(ctx: Ctx, o: Op): Promise<void> {
  ctx.log(describe(o))
  const m = ctx.model
  switch (o.op) {
    case 'create': {
      const name = m.newVolName()
      const res = await call(ctx, 'controller', 'CreateVolume', {
        name, volume_capabilities: [capOf(o)], parameters: o.kind === 'image' ? { kind: 'image' } : {}, capacity_range: { required_bytes: String(o.size) },
      })
      await addVolume(ctx, name, o.kind, res.volume, new Map())
      return
    }
    case 'restore': {
      const name = m.newVolName()
      const s = o.snap
      const res = await call(ctx, 'controller', 'CreateVolume', {
        name, volume_capabilities: [capOf(s)], parameters: s.kind === 'image' ? { kind: 'image' } : {},
        capacity_range: { required_bytes: String(s.size + BigInt(o.extra)) }, volume_content_source: { snapshot: { snapshot_id: s.id } },
      })
      await addVolume(ctx, name, s.kind, res.volume, new Map(s.data))
      return
    }
    case 'stage': {
      const v = o.vol
      await call(ctx, 'node', 'NodeStageVolume', { volume_id: v.id, staging_target_path: v.staging, volume_capability: capOf(v), volume_context: v.context })
      v.staged = true
      return
    }
    case 'publish': {
      const v = o.vol
      await call(ctx, 'node', 'NodePublishVolume', {
        volume_id: v.id, staging_target_path: v.staging, target_path: v.target, volume_capability: capOf(v), volume_context: v.context, readonly: false,
      })
      v.published = true
      const bad = await verifyData(v, v.target, 'the new target')
      if (bad.length > 0) throw new Violation('data', bad.join('\n'))
      return
    }
    case 'write': {
      const v = o.vol
      const bytes = v.kind === 'block' ? REGION : o.bytes
      const data = payload(o.seed, bytes)
      await within(WRITE_HANG_MS, `write through ${v.target}`, async () => {
        const fh = await fsp.open(v.kind === 'block' ? v.target : path.join(v.target, `f${o.slot}`), v.kind === 'block' ? 'r+' : 'w')
        try {
          await fh.write(data, 0, bytes, v.kind === 'block' ? o.slot * REGION : 0)
          await fh.sync()
        } finally {
          await fh.close()
        }
      })
      v.data.set(v.kind === 'block' ? String(o.slot) : `f${o.slot}`, sha(data))
      return
    }
    case 'unpublish': {
      const v = o.vol
      await call(ctx, 'node', 'NodeUnpublishVolume', { volume_id: v.id, target_path: v.target })
      v.published = false
      return
    }
    case 'unstage': {
      const v = o.vol
      await call(ctx, 'node', 'NodeUnstageVolume', { volume_id: v.id, staging_target_path: v.staging })
      v.staged = false
      v.deviceStale = false
      return
    }
    case 'expand': {
      const v = o.vol
      const want = v.capacity + BigInt(8 * MiB)
      const res = await call(ctx, 'controller', 'ControllerExpandVolume', { volume_id: v.id, capacity_range: { required_bytes: String(want) }, volume_capability: capOf(v) })
      v.capacity = BigInt(res.capacity_bytes)
      if (v.staged && v.kind === 'block') v.deviceStale = true
      if (v.published) {
        await call(ctx, 'node', 'NodeExpandVolume', {
          volume_id: v.id, volume_path: v.target, staging_target_path: v.staging, capacity_range: { required_bytes: String(want) }, volume_capability: capOf(v),
        })
        v.deviceStale = false
      }
      return
    }
    case 'snapshot': {
      const v = o.vol
      const name = m.newSnapName()
      const req = { name, source_volume_id: v.id }
      let res = await call(ctx, 'controller', 'CreateSnapshot', req)
      // The snapshotter polls until ready_to_use; so does the CO here, with the same request.
      for (const t0 = Date.now(); !res.snapshot.ready_to_use; ) {
        if (Date.now() - t0 > CONVERGE_MS) throw new Violation('stuck', `snapshot ${name} not ready after ${CONVERGE_MS} ms`)
        await sleep(50)
        res = await call(ctx, 'controller', 'CreateSnapshot', req)
      }
      const snap: Snap = { name, id: res.snapshot.snapshot_id, sourceId: v.id, kind: v.kind, size: BigInt(res.snapshot.size_bytes), data: new Map(v.data) }
      m.snaps.push(snap)
      ctx.log(`  -> ${snap.id}`)
      return
    }
    case 'deleteSnapshot': {
      await call(ctx, 'controller', 'DeleteSnapshot', { snapshot_id: o.snap.id })
      m.snaps.splice(m.snaps.indexOf(o.snap), 1)
      return
    }
    case 'delete': {
      const v = o.vol
      await call(ctx, 'controller', 'DeleteVolume', { volume_id: v.id })
      m.vols.splice(m.vols.indexOf(v), 1)
      // The CO's own folders go with the volume; a leftover inside them (a target or device
      // file the driver should have removed) makes rmdir fail and is reported.
      try {
        await fsp.rmdir(path.dirname(v.target))
        await fsp.rmdir(v.staging)
        await fsp.rmdir(path.dirname(v.staging))
      } catch (e) {
        throw new Violation('leftover', `the CO's folders of deleted volume ${v.name} are not empty: ${(e as Error).message}`)
      }
      return
    }
  }
}

async function addVolume(ctx: Ctx, name: string, kind: Vol['kind'], volume: any, data: Map<string, string>): Promise<void> {
  const { staging, target } = ctx.model.coPaths(name, kind)
  // The CO makes the staging folder and the pod's volume folder; the driver makes the target.
  await fsp.mkdir(staging, { recursive: true })
  await fsp.mkdir(path.dirname(target), { recursive: true })
  ctx.model.vols.push({
    name, kind, id: volume.volume_id, context: volume.volume_context, capacity: BigInt(volume.capacity_bytes),
    staged: false, published: false, staging, target, data, deviceStale: false,
  })
  ctx.log(`  -> ${volume.volume_id}`)
}
