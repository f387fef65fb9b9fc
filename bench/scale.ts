// Scale: NodePublishVolume/NodeUnpublishVolume with many unrelated mounts on the machine, and the
// controller with many volumes in its store.
import { promises as fsp, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { silentLogger } from '../common/log.js'
import { LocalStore } from '../common/store/local.js'
import { DEFAULT_POOL, type VolumeSpec, type VolumeStatus } from '../common/store/model.js'
import { FIRST_PROJECT_ID } from '../controller/placement.js'
import { volumeIdFor } from '../common/ids.js'
import { readMountInfo } from '../native/index.js'
import { MOUNT_CAP, rawListVolumes, volumeOf } from './csi.js'
import type { Driver, TscsiDriver } from './drivers.js'
import { mountTableSize } from './mounts.js'
import { median, msSince, percentile, Recorder } from './stats.js'

/** Byte offset of the end of a log file, to read only what a phase adds. */
export function logOffset(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}

/**
 * Server-side times of tscsi's RPCs from its log (one JSON line per RPC carrying `rpc` and `ms`),
 * from byte offset `from` on. Needs --log-level info or lower; empty otherwise.
 */
export function serverTimes(file: string, from: number): Map<string, number[]> {
  const out = new Map<string, number[]>()
  let text: string
  try {
    text = readFileSync(file).subarray(from).toString('utf8')
  } catch {
    return out
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"rpc":')) continue
    try {
      const j = JSON.parse(line) as { rpc?: unknown; ms?: unknown; code?: unknown }
      if (typeof j.rpc !== 'string' || typeof j.ms !== 'number' || j.code !== 'OK') continue
      const method = j.rpc.split('.').pop()!
      let list = out.get(method)
      if (!list) out.set(method, (list = []))
      list.push(j.ms)
    } catch {
      /* not one of ours */
    }
  }
  return out
}

export interface PublishResult {
  driver: string
  /** Lines of /proc/self/mountinfo while measuring. */
  tableLines: number
  iterations: number
  client: Recorder
  /** Server-side p50s (tscsi only, from its log). */
  serverP50: Record<string, number>
}

/**
 * Stages one volume, then publishes and unpublishes it `iterations` times (a fresh target each
 * time, as for a new pod), then unstages and deletes it.
 */
export async function publishLoop(d: Driver, dir: string, tag: string, iterations: number): Promise<PublishResult> {
  const rec = new Recorder()
  const staging = path.join(dir, `${d.name}-${tag}-stage`)
  const pods = path.join(dir, `${d.name}-${tag}-pods`)
  await fsp.mkdir(staging, { recursive: true })
  await fsp.mkdir(pods, { recursive: true })
  const created = await d.controller.CreateVolume({ name: `scale-${d.name}-${tag}`, capacity_range: { required_bytes: String(1 << 20) }, volume_capabilities: [MOUNT_CAP], parameters: {} })
  const volume = volumeOf(created)
  const id = volume.volume_id
  const ctx = volume.volume_context
  await d.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: MOUNT_CAP, volume_context: ctx })
  const from = logOffset(d.nodeLog)
  const tableLines = mountTableSize()
  try {
    for (let j = 0; j < iterations; j++) {
      const target = path.join(pods, `p${j}`)
      await rec.time('NodePublishVolume', () => d.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: MOUNT_CAP, readonly: false, volume_context: ctx }))
      await rec.time('NodeUnpublishVolume', () => d.node.NodeUnpublishVolume({ volume_id: id, target_path: target }))
    }
  } finally {
    await d.node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined)
    await d.controller.DeleteVolume({ volume_id: id }).catch(() => undefined)
    await fsp.rmdir(staging).catch(() => undefined)
    await fsp.rmdir(pods).catch(() => undefined)
  }
  await new Promise((r) => setTimeout(r, 50))
  const server = serverTimes(d.nodeLog, from)
  const serverP50: Record<string, number> = {}
  for (const m of ['NodePublishVolume', 'NodeUnpublishVolume']) serverP50[m] = percentile(server.get(m) ?? [], 50)
  return { driver: d.name, tableLines, iterations, client: rec, serverP50 }
}

/** What one full read and parse of /proc/self/mountinfo costs now (median of a few), in ms. */
export function mountInfoScanMs(reads = 5): number {
  const t: number[] = []
  for (let i = 0; i < reads; i++) {
    const t0 = process.hrtime.bigint()
    readMountInfo()
    t.push(msSince(t0))
  }
  return median(t)
}

export interface StoreResult {
  volumes: number
  create: Recorder
  deleteAtSize: Recorder
  listAll: Recorder
  listAllEntries: number
  listAllBytes: number
  /** The same full listing received as bytes, undecoded (the driver's and the transport's share). */
  listRaw: Recorder
  listPage: Recorder
  listWalk: Recorder
  pages: number
}

/**
 * Writes ready dir volumes number `from` to `volumes` - 1, placed on nodeId, straight into a local store folder, through
 * the store's own implementation (atomic writes, as the controller and node write them), and
 * makes their directories under dataRoot. Run it while no tscsi process is using the folder; the
 * processes started afterwards load it as they would after a restart. Returns seconds taken.
 */
export async function populateStore(stateDir: string, dataRoot: string, nodeId: string, volumes: number, from = 0, concurrency = 64): Promise<number> {
  const t0 = process.hrtime.bigint()
  const store = await LocalStore.open(path.join(stateDir, 'store'), silentLogger(), 3_600_000)
  const volumesDir = path.join(dataRoot, 'volumes')
  await fsp.mkdir(volumesDir, { recursive: true, mode: 0o700 })
  const now = new Date().toISOString()
  let next = from
  const worker = async (): Promise<void> => {
    while (next < volumes) {
      const i = next++
      const name = `fill-${i}`
      const id = volumeIdFor(name)
      // What CreateVolume records for a default StorageClass (kind dir, quota auto).
      const spec: VolumeSpec = {
        name, node: nodeId, kind: 'dir', pool: DEFAULT_POOL, capacityBytes: String(1 << 20), accessType: 'mount',
        projectId: FIRST_PROJECT_ID + i, parameters: {}, createdAt: now, generation: 1,
      }
      await store.volumes.putSpec(id, spec)
      await fsp.mkdir(path.join(volumesDir, id), { mode: 0o777 }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e
      })
      const status: VolumeStatus = { phase: 'Ready', observedGeneration: 1, updatedAt: now }
      await store.volumes.putStatus(id, status)
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, worker))
  } finally {
    await store.close()
  }
  return msSince(t0) / 1000
}

/**
 * With the store already holding its volumes: times CreateVolume and DeleteVolume of the same,
 * one pair at a time, ListVolumes of everything, and a paged walk with max_entries 500.
 */
export async function storeScale(d: TscsiDriver, volumes: number, samples: number): Promise<StoreResult> {
  const caps = { capacity_range: { required_bytes: String(1 << 20) }, volume_capabilities: [MOUNT_CAP], parameters: {} }
  const create = new Recorder()
  const deleteAtSize = new Recorder()
  // Each create is deleted before the next, so the store stays at its size (10 stays 10, not 110).
  for (let i = 0; i < samples; i++) {
    const res = await create.time('CreateVolume', () => d.controller.CreateVolume({ name: `probe-${i}`, ...caps }))
    const id = volumeOf(res).volume_id
    await deleteAtSize.time('DeleteVolume', () => d.controller.DeleteVolume({ volume_id: id }))
  }

  const listAll = new Recorder()
  let listAllEntries = 0
  let listAllBytes = 0
  for (let i = 0; i < 5; i++) {
    const res = await listAll.time('ListVolumes', () => d.controller.ListVolumes({ max_entries: 0, starting_token: '' }))
    listAllEntries = res.entries.length
    listAllBytes = Buffer.byteLength(JSON.stringify(res))
  }
  const listRaw = new Recorder()
  const raw = rawListVolumes(d.controllerSocket)
  try {
    for (let i = 0; i < 5; i++) await listRaw.time('ListVolumes', () => raw.call({ max_entries: 0, starting_token: '' }))
  } finally {
    raw.close()
  }
  const listPage = new Recorder()
  const listWalk = new Recorder()
  let pages = 0
  for (let w = 0; w < 3; w++) {
    const s = process.hrtime.bigint()
    let token = ''
    pages = 0
    do {
      const res = await listPage.time('ListVolumes', () => d.controller.ListVolumes({ max_entries: 500, starting_token: token }))
      token = res.next_token
      pages++
    } while (token)
    listWalk.add('walk', msSince(s))
  }
  return { volumes, create, deleteAtSize, listAll, listAllEntries, listAllBytes, listRaw, listPage, listWalk, pages }
}
