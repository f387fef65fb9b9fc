// Pure placement and capacity arithmetic: which node a new volume goes to and how much room each
// node has left. No I/O, so every rule is a table test.
import { exhausted, outOfRange } from '../common/errors.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'
import type { VolumeKind } from '../common/store/model.js'

export interface Topology {
  segments: Record<string, string>
}

export interface NodeRoom {
  id: string
  topology: Record<string, string>
  total: bigint
  /** What a new volume may still take: the filesystem's free space, less what is promised. */
  free: bigint
}

/** Bytes promised to volumes on each node (deleted-in-progress volumes still hold theirs). */
export function allocatedByNode(volumes: VolumeObject[]): Map<string, bigint> {
  const out = new Map<string, bigint>()
  for (const v of volumes) out.set(v.spec.node, (out.get(v.spec.node) ?? 0n) + BigInt(v.spec.capacityBytes))
  return out
}

/** Room in one pool on every node that serves it (and the kind, when given). */
export function roomOf(nodes: NodeObject[], volumes: VolumeObject[], pool: string, kind?: VolumeKind): NodeRoom[] {
  const allocated = allocatedByNode(volumes.filter((v) => v.spec.pool === pool))
  const out: NodeRoom[] = []
  for (const n of nodes) {
    const p = n.status?.pools[pool]
    if (!p) continue // the pool is missing there, or the node never reported: promise nothing
    if (kind && !n.spec.kinds.includes(kind)) continue
    const total = BigInt(p.totalBytes)
    const unpromised = total - (allocated.get(n.id) ?? 0n)
    const available = BigInt(p.availableBytes)
    const free = unpromised < available ? unpromised : available
    out.push({ id: n.id, topology: n.spec.topology, total, free: free < 0n ? 0n : free })
  }
  return out
}

/** Project ids start high, clear of ids an administrator may use by hand. */
export const FIRST_PROJECT_ID = 1_000_000

/** The lowest project id no volume on node's pool uses. */
export function freeProjectId(volumes: VolumeObject[], node: string, pool: string): number {
  const used = new Set(volumes.filter((v) => v.spec.node === node && v.spec.pool === pool && v.spec.projectId !== undefined).map((v) => v.spec.projectId))
  let id = FIRST_PROJECT_ID
  while (used.has(id)) id++
  return id
}

export function matches(nodeTopology: Record<string, string>, t: Topology): boolean {
  const segs = Object.entries(t.segments ?? {})
  return segs.length > 0 && segs.every(([k, v]) => nodeTopology[k] === v)
}

export interface Requirements {
  requisite: Topology[]
  preferred: Topology[]
}

/**
 * Picks the node for a new volume. Preferred topologies come first in the order given (under
 * WaitForFirstConsumer preferred[0] is the node the scheduler chose), then the other allowed
 * nodes with the most room first. Errors follow the spec: nothing in the requisite topology or
 * no room there is RESOURCE_EXHAUSTED; a size no node could ever hold is OUT_OF_RANGE.
 */
export function chooseNode(rooms: NodeRoom[], size: bigint, req: Requirements, pool = 'default'): NodeRoom {
  const allowed = req.requisite.length === 0 ? rooms : rooms.filter((r) => req.requisite.some((t) => matches(r.topology, t)))
  if (allowed.length === 0) {
    throw exhausted(
      req.requisite.length === 0
        ? `no node serves pool ${JSON.stringify(pool)} (or none has reported its capacity yet)`
        : `no node in accessibility_requirements.requisite serves pool ${JSON.stringify(pool)}`,
    )
  }
  const ordered: NodeRoom[] = []
  for (const t of req.preferred) {
    for (const r of allowed) if (matches(r.topology, t) && !ordered.includes(r)) ordered.push(r)
  }
  const rest = allowed.filter((r) => !ordered.includes(r)).sort((a, b) => (b.free > a.free ? 1 : b.free < a.free ? -1 : a.id.localeCompare(b.id)))
  ordered.push(...rest)
  const fit = ordered.find((r) => r.free >= size)
  if (fit) return fit
  const largest = allowed.reduce((m, r) => (r.total > m ? r.total : m), 0n)
  if (size > largest) throw outOfRange(`requested ${size} bytes is more than pool ${JSON.stringify(pool)} holds on any allowed node (${largest} bytes)`)
  const best = ordered[0]!
  throw exhausted(`not enough free space in pool ${JSON.stringify(pool)}: ${size} bytes requested, node ${best.id} has ${best.free} bytes free`)
}
