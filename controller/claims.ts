// Placement that stays right with several controllers at once. The Deployment runs two replicas
// and each sidecar elects its own leader, so during a failover two provisioners can call
// CreateVolume on two controller processes at the same moment; a lock inside one process (or a
// decision made from one process's watch cache) would let both promise a node's last bytes, or
// the same project id.
//
// The design: every promise is a claim in a per-node ledger document (Store.ledger, `node.<id>`),
// written by compare-and-swap: the API server's resourceVersion precondition in a cluster, an
// exclusive link(2) in the local folder. A controller decides on the ledger as it reads it fresh,
// and if another controller wrote it in between, the write is refused and it decides again on the
// newer document. Why not a Lease: a Lease is mutual exclusion by time. A holder paused past its
// lease (GC, a slow API server) still acts while another holds it, and a holder that dies blocks
// every CreateVolume until the lease expires. The compare-and-swap needs no clocks, and costs
// one read and one write of a small object per create, with no waiting unless two creates on one
// node really collide. Contention is per node, not cluster-wide.
//
// Claims hold room for volumes the cache has not caught up with; volumes hold it once written.
// DeleteVolume releases a volume's claim. A claim whose volume never appeared (a controller died
// between claim and create, and the CO gave up) is dropped once older than CLAIM_GRACE_MS; a
// create that would land after that is refused instead (see checkClaimFresh).
import { aborted, type CsiError } from '../common/errors.js'
import type { Outcome } from '../common/lock.js'
import type { LedgerDoc, VolumeSpec } from '../common/store/model.js'
import type { NodeObject } from '../common/store/types.js'
import type { ControllerDeps } from './deps.js'
import { holdingsFor, type SpecHoldings } from './holdings.js'
import { claimsId, planClaim, roomOf, type ClaimOutcome, type ClaimRequest, type NodeRoom } from './placement.js'

export const CLAIM_GRACE_MS = 10 * 60_000
/** Rounds of "the node looked roomy in the cache but is not": each one reads a node fresh. */
const MAX_REPLANS = 20

/** Chooses a node among the rooms the volume sees, or throws the error the RPC answers with. */
export type Pick = (rooms: NodeRoom[]) => NodeRoom

export interface Claimed {
  node: string
  projectId?: number
  at: Date
}

/** A pick for a volume that can only go to one node (a restore, a clone, an expansion). */
export function onlyNode(node: string, bytes: bigint, refuse: (free: bigint) => CsiError): Pick {
  return (rooms) => {
    const room = rooms.find((r) => r.id === node)
    if (!room || room.free < bytes) throw refuse(room?.free ?? 0n)
    return room
  }
}

/**
 * Claims room (and a project id) for a volume on the node pick() chooses. Ranking uses cached
 * ledgers; the decision is the ledger's compare-and-swap on fresh data, and a node that turns out
 * fuller than the cache said is ranked again with what was read. Idempotent per volume: a repeat
 * finds its claim and keeps its project id. Claims queued behind this process's running commit
 * are decided and written together (commitLedger).
 */
export function claimRoom(d: ControllerDeps, req: ClaimRequest, pick: Pick): Promise<Claimed> {
  return d.placement.submit({ claim: req, pick }) as Promise<Claimed>
}

/**
 * Takes back a volume's claim on a node (idempotent: a missing claim is fine). Queued with this
 * process's placements, as claims are: a hundred concurrent DeleteVolumes (the provisioner's
 * workers) each racing a compare-and-swap on the node's one ledger document meant one winner per
 * round and the rest re-reading, and deleting 500 claims took minutes.
 */
export async function releaseClaim(d: ControllerDeps, node: string, volumeId: string): Promise<void> {
  try {
    await d.placement.submit({ release: { node, volumeId } })
  } catch (e) {
    // The volume is gone already; a claim left behind is dropped as an orphan later.
    d.log.warn({ err: e, volume_id: volumeId, node }, 'could not release a volume\'s claim; it will be dropped as an orphan')
  }
}

/** One change to a node's ledger, as queued for a group commit. */
export type LedgerOp = { claim: ClaimRequest; pick: Pick } | { release: { node: string; volumeId: string } }

/**
 * The group commit of claims and releases (deps.placement runs one at a time). The ops are
 * planned in the order they came, each seeing the room the ones before it took, and then every
 * node's share is written in one compare-and-swap of its ledger, which decides each claim again
 * on the document it replaces. A claim that no longer fits there is planned again, on what was
 * read, in the next round. Every op is answered only after the write carrying it succeeded (or
 * with the error of the one that failed), so an acknowledged claim is a recorded one, exactly as
 * when each claim had its own write; a process killed mid-commit has told nobody anything.
 */
export async function commitLedger(d: ControllerDeps, ops: LedgerOp[]): Promise<Outcome<Claimed | undefined>[]> {
  const out: Outcome<Claimed | undefined>[] = new Array(ops.length)
  let pending = ops.map((_, i) => i)
  const seen = new Map<string, LedgerDoc>()
  for (let round = 0; round < MAX_REPLANS && pending.length > 0; round++) {
    // The live index, not a list of every volume: placement asks only about the nodes it ranks.
    const [nodes, volumes] = await Promise.all([d.store.nodes.list(), holdingsFor(d.store.volumes)])
    // Orphans are left out of the ranking too: a node full only of them has room.
    const claims = new Map<string, LedgerDoc | undefined>()
    const orphans = new Map<string, Set<string>>()
    for (const n of nodes) {
      const doc = seen.get(n.id) ?? (await d.store.ledger.get(claimsId(n.id)))
      const gone = await orphanClaims(d, n.id, doc, volumes)
      orphans.set(n.id, gone)
      claims.set(n.id, doc && { ...doc, claims: Object.fromEntries(Object.entries(doc.claims ?? {}).filter(([id]) => !gone.has(id))) })
    }
    const at = d.clock()
    const byNode = new Map<string, number[]>()
    for (const i of pending) {
      const op = ops[i]!
      let node: string
      if ('release' in op) {
        node = op.release.node
      } else {
        const { claim: req, pick } = op
        try {
          node = pick(roomOf(nodes, volumes, req.pool, req.kind, claims, req.volumeId)).id
        } catch (e) {
          out[i] = { error: e }
          continue
        }
        const planned = planClaim(claims.get(node), nodes.find((n) => n.id === node)!, volumes, req, new Set(), at)
        if (planned.next) claims.set(node, planned.next)
      }
      byNode.set(node, [...(byNode.get(node) ?? []), i])
    }
    d.metrics.ledgerCommit(pending.length, byNode.size)
    const again: number[] = []
    await Promise.all([...byNode].map(async ([node, mine]) => {
      try {
        const done = await d.store.ledger.update(claimsId(node), (doc) =>
          applyOps(doc, nodes.find((n) => n.id === node), volumes, mine.map((i) => ops[i]!), orphans.get(node) ?? new Set(), at))
        mine.forEach((i, k) => {
          const r = done.results[k]
          if (!r) out[i] = { value: undefined }
          else if (r.claimed) out[i] = { value: { node, ...(r.projectId !== undefined && { projectId: r.projectId }), at } }
          else again.push(i)
        })
        if (mine.some((i) => out[i] === undefined)) seen.set(node, done.doc)
      } catch (e) {
        for (const i of mine) out[i] = { error: e }
      }
    }))
    pending = again.sort((a, b) => a - b)
  }
  for (const i of pending) out[i] = { error: aborted(`placing volume ${(ops[i] as { claim: ClaimRequest }).claim.volumeId} kept meeting other controllers' placements; retry`) }
  return out
}

/**
 * One node's share of a commit, decided on its ledger as just read: releases drop their claim,
 * claims are decided by planClaim in turn. Pure, because the ledger may call it again on a newer
 * document. node is undefined for a node that is gone, which only releases ask about.
 */
function applyOps(doc: LedgerDoc | undefined, node: NodeObject | undefined, volumes: SpecHoldings, ops: LedgerOp[], orphans: ReadonlySet<string>, at: Date):
  { next?: LedgerDoc; result: { results: (ClaimOutcome | undefined)[]; doc: LedgerDoc } } {
  let cur: LedgerDoc = doc ?? { claims: {} }
  let changed = false
  const results: (ClaimOutcome | undefined)[] = []
  for (const op of ops) {
    if ('release' in op) {
      const id = op.release.volumeId
      if (cur.claims?.[id]) {
        const { [id]: _, ...rest } = cur.claims
        cur = { ...cur, claims: rest }
        changed = true
      }
      results.push(undefined)
      continue
    }
    const { next, result } = planClaim(cur, node!, volumes, op.claim, orphans, at)
    if (next) {
      cur = next
      changed = true
    }
    results.push(result)
  }
  return { ...(changed && { next: cur }), result: { results, doc: cur } }
}

/**
 * Writes a new volume under a claim made at claimed.at: false when the volume exists already
 * (another controller made it first). A claim this old may be about to be dropped as an orphan,
 * so the create is refused (ABORTED; the retry renews the claim).
 */
export async function createClaimed(d: ControllerDeps, id: string, spec: VolumeSpec, claimed: Claimed): Promise<boolean> {
  if (d.clock().getTime() - claimed.at.getTime() > CLAIM_GRACE_MS / 2) throw aborted(`placing volume ${id} took too long; retry`)
  return d.store.volumes.create(id, spec)
}

/**
 * Claims on node whose volume does not exist there (read fresh), and old enough that no create
 * can still be on its way: they hold room for nothing.
 */
async function orphanClaims(d: ControllerDeps, node: string, doc: LedgerDoc | undefined, volumes: SpecHoldings): Promise<Set<string>> {
  const cutoff = d.clock().getTime() - CLAIM_GRACE_MS
  const out = new Set<string>()
  for (const [id, c] of Object.entries(doc?.claims ?? {})) {
    if (volumes.has(node, id) || Date.parse(c.at) > cutoff) continue
    const v = await d.store.volumes.refresh(id)
    if (!v || v.spec.node !== node) out.add(id)
  }
  return out
}
