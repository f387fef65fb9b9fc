// The container orchestrator's view of a crash run: the volumes and snapshots it made, where it
// staged and published them, and what it wrote through them. The driver's store and disk are
// checked against this after every round; the next operation is chosen from it, so the stream of
// operations depends on the seed alone, never on timing.
import path from 'node:path'

export type VolKind = 'dir' | 'image' | 'block'

export interface Vol {
  name: string
  kind: VolKind
  id: string
  context: Record<string, string>
  capacity: bigint
  staged: boolean
  published: boolean
  /** The CO's staging directory (exists from CreateVolume until DeleteVolume). */
  staging: string
  /** The publish target: a directory (mount) or a file (block) the driver creates. */
  target: string
  /** What was written through the volume: file name → sha256 (dir, image), or 64 KiB region → sha256 (block). */
  data: Map<string, string>
  /** Set once NodeExpandVolume told the loop device its new size (block); until then it may lag. */
  deviceStale: boolean
}

export interface Snap {
  name: string
  id: string
  sourceId: string
  kind: VolKind
  size: bigint
  /** The source's data when the snapshot was taken. */
  data: Map<string, string>
}

export type Op =
  | { op: 'create'; kind: VolKind; size: number }
  | { op: 'restore'; snap: Snap; extra: number }
  | { op: 'stage' | 'publish' | 'unpublish' | 'unstage' | 'delete' | 'expand' | 'snapshot'; vol: Vol }
  | { op: 'write'; vol: Vol; slot: number; bytes: number; seed: number }
  | { op: 'deleteSnapshot'; snap: Snap }

export const MiB = 1 << 20
/** Block volumes are written in regions of this size, so each region has one checksum. */
export const REGION = 64 * 1024
const MAX_VOLUMES = 6
const MAX_SNAPSHOTS = 4

export interface Rng {
  next(): number
  int(n: number): number
  pick<T>(a: readonly T[]): T
  chance(p: number): boolean
}

export class Model {
  readonly vols: Vol[] = []
  readonly snaps: Snap[] = []
  private nextVol = 0
  private nextSnap = 0

  constructor(readonly dir: string) {}

  newVolName(): string {
    return `crash-v${this.nextVol++}`
  }

  newSnapName(): string {
    return `crash-s${this.nextSnap++}`
  }

  coPaths(name: string, kind: VolKind): { staging: string; target: string } {
    const base = path.join(this.dir, 'co', name)
    return { staging: path.join(base, 'globalmount'), target: path.join(base, 'pod', kind === 'block' ? 'dev' : 'mount') }
  }

  /**
   * The next operation, drawn from what a CO could legally ask now (stage only what exists,
   * delete only what is unstaged, ...). Weights keep a handful of volumes alive, most of them
   * staged and published, which is where kills hurt.
   */
  pick(rng: Rng): Op {
    const c: [number, () => Op][] = []
    const some = <T>(a: T[], w: number, f: (x: T) => Op): void => {
      if (a.length > 0) c.push([w, () => f(rng.pick(a))])
    }
    const v = this.vols
    if (v.length < MAX_VOLUMES) {
      c.push([v.length < 3 ? 6 : 2.5, () => {
        const kind = rng.pick(['dir', 'dir', 'image', 'image', 'block'] as const)
        // ext4 images stay small (mkfs accepts 8 MiB); block images need no filesystem.
        const size = (kind === 'image' ? 16 + 8 * rng.int(3) : 8 + 8 * rng.int(3)) * MiB
        return { op: 'create', kind, size }
      }])
      some(this.snaps, 1, (snap) => ({ op: 'restore', snap, extra: snap.kind !== 'dir' && rng.chance(0.4) ? 8 * MiB : 0 }))
    }
    some(v.filter((x) => !x.staged), 3, (vol) => ({ op: 'stage', vol }))
    some(v.filter((x) => x.staged && !x.published), 3, (vol) => ({ op: 'publish', vol }))
    some(v.filter((x) => x.published), 3, (vol) => ({ op: 'write', vol, slot: rng.int(vol.kind === 'block' ? 24 : 6), bytes: 1 + rng.int(REGION), seed: rng.int(2 ** 31) }))
    some(v.filter((x) => x.published), 1.5, (vol) => ({ op: 'unpublish', vol }))
    some(v.filter((x) => x.staged && !x.published), 1.5, (vol) => ({ op: 'unstage', vol }))
    // ext4 cannot grow online here (no CAP_SYS_RESOURCE): dir volumes grow anywhere, block
    // volumes while published (NodeExpandVolume needs the device's path).
    some(v.filter((x) => x.kind === 'dir' || (x.kind === 'block' && x.published)), 1, (vol) => ({ op: 'expand', vol }))
    if (this.snaps.length < MAX_SNAPSHOTS) some(v, 1.5, (vol) => ({ op: 'snapshot', vol }))
    some(this.snaps, this.snaps.length >= 3 ? 1.5 : 0.7, (snap) => ({ op: 'deleteSnapshot', snap }))
    some(v.filter((x) => !x.staged), v.length >= 4 ? 3 : 1, (vol) => ({ op: 'delete', vol }))
    let r = rng.next() * c.reduce((s, [w]) => s + w, 0)
    for (const [w, f] of c) {
      if ((r -= w) < 0) return f()
    }
    return c[c.length - 1]![1]()
  }
}

/** One line for the op log. */
export function describe(o: Op): string {
  switch (o.op) {
    case 'create': return `create ${o.kind} ${o.size / MiB} MiB`
    case 'restore': return `restore ${o.snap.name} (${o.snap.id}, ${o.snap.kind})${o.extra ? ` +${o.extra / MiB} MiB` : ''}`
    case 'deleteSnapshot': return `deleteSnapshot ${o.snap.name} (${o.snap.id})`
    case 'write': return `write ${o.vol.name} (${o.vol.id}) slot ${o.slot} ${o.bytes} B`
    default: return `${o.op} ${o.vol.name} (${o.vol.id}, ${o.vol.kind})`
  }
}

/** Deterministic bytes for a write (the seed makes a replay write the same data). */
export function payload(seed: number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes)
  let s = seed >>> 0
  for (let i = 0; i < bytes; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    b.writeUInt32LE(s, i <= bytes - 4 ? i : 0)
  }
  for (let i = bytes - (bytes % 4); i < bytes; i++) b[i] = (seed + i) & 0xff
  return b
}
