// Pure placement and capacity arithmetic: which node a new volume goes to and how much room each
// node has left. No I/O, so every rule is a table test.
import { exhausted, outOfRange } from '../common/errors.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'
import { onItsNode, type LedgerDoc, type VolumeKind } from '../common/store/model.js'
import { holdingsOf, type SpecHoldings } from './holdings.js'

/**
 * The volumes placement counts: a list (tests, one-off callers) or the controller's live index of
 * them (holdings.ts), which answers per node and pool without walking every volume.
 */
export type KnownVolumes = readonly VolumeObject[] | SpecHoldings

const asHoldings = (v: KnownVolumes): SpecHoldings => ('total' in v ? v : holdingsOf(v as readonly VolumeObject[]))

/** Each node's ledger (its claims), by node id; a node missing from the map has no claims known. */
export type ClaimsByNode = ReadonlyMap<string, LedgerDoc | undefined>

/** The ledger id of a node's claims. */
export const claimsId = (node: string): string => `node.${node}`

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

/**
 * What each volume holds on each node, by node and volume id: its spec's size or its claim's,
 * whichever is larger. The claim covers a volume another controller has just made and this
 * process has not seen yet, and an expansion being recorded; the spec covers volumes made before
 * claims existed. Deleted-in-progress volumes still hold theirs. With pool, only that pool.
 */
export function heldByNode(volumes: VolumeObject[], claims: ClaimsByNode = new Map(), pool?: string): Map<string, Map<string, bigint>> {
  const out = new Map<string, Map<string, bigint>>()
  const hold = (node: string, id: string, bytes: bigint): void => {
    let m = out.get(node)
    if (!m) out.set(node, (m = new Map()))
    if ((m.get(id) ?? -1n) < bytes) m.set(id, bytes)
  }
  for (const v of volumes) if (onItsNode(v.spec) && (pool === undefined || v.spec.pool === pool)) hold(v.spec.node, v.id, BigInt(v.spec.capacityBytes))
  for (const [node, doc] of claims) {
    for (const [id, c] of Object.entries(doc?.claims ?? {})) if (pool === undefined || c.pool === pool) hold(node, id, BigInt(c.bytes))
  }
  return out
}

/** Bytes promised on each node. */
export function allocatedByNode(volumes: VolumeObject[], claims?: ClaimsByNode, pool?: string): Map<string, bigint> {
  const out = new Map<string, bigint>()
  for (const [node, held] of heldByNode(volumes, claims, pool)) out.set(node, [...held.values()].reduce((a, b) => a + b, 0n))
  return out
}

/**
 * Room in one pool on every node that serves it (and the kind, when given). With forVolume, the
 * room that volume sees: what it already holds on a node counts as room there (a repeated create
 * whose claim is recorded, or an expansion that needs only the difference).
 */
export function roomOf(nodes: NodeObject[], volumes: KnownVolumes, pool: string, kind?: VolumeKind, claims?: ClaimsByNode, forVolume?: string): NodeRoom[] {
  const specs = asHoldings(volumes)
  const out: NodeRoom[] = []
  for (const n of nodes) {
    const p = n.status?.pools[pool]
    if (!p) continue // the pool is missing there, or the node never reported: promise nothing
    if (kind && !n.spec.kinds.includes(kind)) continue
    // As heldByNode: each volume holds the larger of its spec's size and its claim's, once.
    let allocated = specs.total(n.id, pool)
    let own = forVolume === undefined ? 0n : specs.bytesOf(n.id, pool, forVolume)
    for (const [id, c] of Object.entries(claims?.get(n.id)?.claims ?? {})) {
      if (c.pool !== pool) continue
      const bytes = BigInt(c.bytes)
      const spec = specs.bytesOf(n.id, pool, id)
      if (bytes > spec) allocated += bytes - spec
      if (id === forVolume && bytes > own) own = bytes
    }
    const total = BigInt(p.totalBytes)
    const unpromised = total - allocated
    const available = BigInt(p.availableBytes)
    const free = unpromised < available ? unpromised : available
    out.push({ id: n.id, topology: n.spec.topology, total, free: (free < 0n ? 0n : free) + own })
  }
  return out
}

/** Project ids start high, clear of ids an administrator may use by hand. */
export const FIRST_PROJECT_ID = 1_000_000

/**
 * The next project id for node's pool: above every id ever handed out there (the ledger's high
 * mark), every volume's and every claim's. Never a freed one: a volume deleted with its folder
 * retained or archived leaves data the kernel still counts against its id. A ledger from before
 * the high mark starts above the ids in use, which is the best it can know.
 */
export function freeProjectId(volumes: KnownVolumes, node: string, pool: string, doc?: LedgerDoc): number {
  let top = Math.max(FIRST_PROJECT_ID - 1, doc?.projectIds?.[pool] ?? 0, asHoldings(volumes).topProjectId(node, pool))
  for (const c of Object.values(doc?.claims ?? {})) if (c.pool === pool && c.projectId !== undefined) top = Math.max(top, c.projectId)
  return top + 1
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

/** A claim a create or an expansion asks for on one node's ledger. */
export interface ClaimRequest {
  volumeId: string
  pool: string
  /** Only nodes that realise this kind qualify (undefined: any). */
  kind?: VolumeKind
  /** What the volume will hold in all (for an expansion, its new size). */
  bytes: bigint
  /** 'new': hand out a project id (a repeat keeps the one it got); a number: keep that one. */
  projectId?: 'new' | number
}

export type ClaimOutcome = { claimed: true; projectId?: number } | { claimed: false; doc: LedgerDoc }

/**
 * Decides a claim on a node's ledger as just read. The node must have room for the volume (what
 * it already holds there counts); orphans (claims found to have no volume) are dropped, written
 * even when the claim does not fit, so the next decision sees what this one saw. Pure, because
 * the ledger may call it again on a newer document.
 */
export function planClaim(doc: LedgerDoc | undefined, node: NodeObject, volumes: KnownVolumes, req: ClaimRequest, orphans: ReadonlySet<string>, now: Date): { next?: LedgerDoc; result: ClaimOutcome } {
  const claims = Object.fromEntries(Object.entries(doc?.claims ?? {}).filter(([id]) => !orphans.has(id)))
  const current: LedgerDoc = { ...doc, claims }
  const dropped = Object.keys(claims).length !== Object.keys(doc?.claims ?? {}).length
  const specs = asHoldings(volumes)
  const [room] = roomOf([node], specs, req.pool, req.kind, new Map([[node.id, current]]), req.volumeId)
  if (!room || room.free < req.bytes) return { ...(dropped && { next: current }), result: { claimed: false, doc: current } }
  const prior = claims[req.volumeId]
  const projectId = typeof req.projectId === 'number'
    ? req.projectId
    : req.projectId === 'new' ? prior?.projectId ?? freeProjectId(specs, node.id, req.pool, current) : undefined
  const claim = { pool: req.pool, bytes: req.bytes.toString(), ...(projectId !== undefined && { projectId }), at: now.toISOString() }
  const high = current.projectIds?.[req.pool] ?? 0
  const projectIds = projectId !== undefined && projectId > high ? { ...current.projectIds, [req.pool]: projectId } : current.projectIds
  const next: LedgerDoc = { ...current, claims: { ...claims, [req.volumeId]: claim }, ...(projectIds && { projectIds }) }
  return { next, result: { claimed: true, ...(projectId !== undefined && { projectId }) } }
}
