// What volumes' specs hold on each node and pool, kept up to date from the store's watch instead
// of walking every volume on each CreateVolume (that walk made a create with 10,000 volumes in
// the store four times slower than with 10; BENCHMARKS.md, issue 17).
//
// Only the ranking and the planning read it. The decision stays the ledger's compare-and-swap
// (claims.ts): a volume is written only after its claim is in the ledger, and its claim is
// released only after the volume is removed, so a volume this index has not caught up with yet
// is still counted through its claim, and one it still counts after removal only errs towards
// less room, never more.
import type { Collection, VolumeObject } from '../common/store/types.js'
import { onItsNode, type VolumeSpec, type VolumeStatus } from '../common/store/model.js'

/** What the specs of the volumes known to this process hold, per node and pool. */
export interface SpecHoldings {
  /** Bytes the spec of volume id holds on node in pool (0n when it holds none there). */
  bytesOf(node: string, pool: string, id: string): bigint
  /** Sum of what every spec holds on node in pool. Deleted-in-progress volumes still hold theirs. */
  total(node: string, pool: string): bigint
  /**
   * The highest project id a spec on node in pool carries, or 0. It does not go down when that
   * volume is deleted: ids are never reused (placement.ts), so forgetting one would gain nothing.
   */
  topProjectId(node: string, pool: string): number
  /** Whether a volume with this id lives on node. */
  has(node: string, id: string): boolean
}

interface Held {
  node: string
  pool: string
  bytes: bigint
  projectId?: number
}

interface Pool {
  held: Map<string, bigint>
  total: bigint
  top: number
}

const key = (node: string, pool: string): string => `${node}\u0000${pool}`

/** The index itself: pure bookkeeping, fed one volume at a time. */
export class Holdings implements SpecHoldings {
  private readonly byId = new Map<string, Held>()
  private readonly pools = new Map<string, Pool>()
  private readonly nodes = new Map<string, Set<string>>()

  /** Records a volume as it is now (replacing what was known of it); undefined: it is gone. */
  set(id: string, obj: VolumeObject | undefined): void {
    this.drop(id)
    // An nfs volume's data is on the export: it holds nothing on the node that made its directory.
    if (!obj || !onItsNode(obj.spec)) return
    const h: Held = { node: obj.spec.node, pool: obj.spec.pool, bytes: BigInt(obj.spec.capacityBytes), ...(obj.spec.projectId !== undefined && { projectId: obj.spec.projectId }) }
    this.byId.set(id, h)
    const k = key(h.node, h.pool)
    let p = this.pools.get(k)
    if (!p) this.pools.set(k, (p = { held: new Map(), total: 0n, top: 0 }))
    p.held.set(id, h.bytes)
    p.total += h.bytes
    if (h.projectId !== undefined && h.projectId > p.top) p.top = h.projectId
    let ids = this.nodes.get(h.node)
    if (!ids) this.nodes.set(h.node, (ids = new Set()))
    ids.add(id)
  }

  private drop(id: string): void {
    const h = this.byId.get(id)
    if (!h) return
    this.byId.delete(id)
    const p = this.pools.get(key(h.node, h.pool))!
    p.held.delete(id)
    p.total -= h.bytes
    // The pool's record stays even when empty: it carries the project id high mark.
    this.nodes.get(h.node)?.delete(id)
  }

  bytesOf(node: string, pool: string, id: string): bigint {
    return this.pools.get(key(node, pool))?.held.get(id) ?? 0n
  }

  total(node: string, pool: string): bigint {
    return this.pools.get(key(node, pool))?.total ?? 0n
  }

  topProjectId(node: string, pool: string): number {
    return this.pools.get(key(node, pool))?.top ?? 0
  }

  has(node: string, id: string): boolean {
    return this.nodes.get(node)?.has(id) ?? false
  }

  /** How many volumes it knows (for tests). */
  get size(): number {
    return this.byId.size
  }
}

/** An index of a fixed list of volumes (the pure functions' callers and their tests). */
export function holdingsOf(volumes: readonly VolumeObject[]): Holdings {
  const h = new Holdings()
  for (const v of volumes) h.set(v.id, v)
  return h
}

type Volumes = Collection<VolumeSpec, VolumeStatus>

/**
 * A Holdings that follows a store collection: every change the watch reports is re-read with
 * get(), one at a time and in the order reported, so two changes of one volume land in order.
 */
export class LiveHoldings {
  private readonly index = new Holdings()
  private chain: Promise<void> = Promise.resolve()
  private failed: unknown
  private unwatch: () => void = () => undefined

  private constructor() {}

  static async follow(volumes: Volumes): Promise<LiveHoldings> {
    const live = new LiveHoldings()
    // Watch first, then list: a change made while the list is read is applied after it (the
    // chain starts with the list), so the older listed state never overwrites a newer one.
    live.unwatch = volumes.watch((id) => live.enqueue(() => volumes.get(id).then((o) => live.index.set(id, o))))
    live.enqueue(async () => {
      for (const v of await volumes.list()) live.index.set(v.id, v)
    })
    try {
      await live.current()
    } catch (e) {
      live.stop()
      throw e
    }
    return live
  }

  /** Stops following the collection. */
  stop(): void {
    this.unwatch()
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((e: unknown) => {
      this.failed ??= e
    })
  }

  /**
   * The index once every change reported so far is applied: as current as a list() of the
   * collection made now. A failed re-read makes it throw (the caller answers UNAVAILABLE, and
   * holdingsFor starts a fresh index for the next call).
   */
  async current(): Promise<SpecHoldings> {
    await this.chain
    if (this.failed !== undefined) throw this.failed
    return this.index
  }
}

const live = new WeakMap<Volumes, Promise<LiveHoldings>>()

/**
 * The live index of a collection, made on first use and then shared by every caller in this
 * process (its memory is one small record per volume). A failed one is replaced.
 */
export async function holdingsFor(volumes: Volumes): Promise<SpecHoldings> {
  let made = live.get(volumes)
  if (!made) live.set(volumes, (made = LiveHoldings.follow(volumes)))
  try {
    return await (await made).current()
  } catch (e) {
    if (live.get(volumes) === made) live.delete(volumes)
    made.then((l) => l.stop(), () => undefined)
    throw e
  }
}
