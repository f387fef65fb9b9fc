// Where things live under the node's pools. A pool is a named data root (`--data-root` is the
// pool "default"; `--pool fast=/mnt/nvme` adds more). Every path here is built from validated
// ids and pool names only (see common/validate.ts), so nothing a request says can point outside
// a root.
import { realpathSync } from 'node:fs'
import path from 'node:path'

import { DEFAULT_POOL, type VolumeKind } from '../common/store/model.js'

export { DEFAULT_POOL }

export class Layout {
  /** Pool name → root folder. */
  readonly pools: ReadonlyMap<string, string>
  private readonly real = new Map<string, string>()

  constructor(readonly dataRoot: string, extraPools: Record<string, string> = {}) {
    this.pools = new Map([[DEFAULT_POOL, dataRoot], ...Object.entries(extraPools)])
  }

  /** The default pool's volumes folder. */
  get volumesDir(): string {
    return this.volumesDirOf(DEFAULT_POOL)
  }

  volumesDirOf(pool: string): string {
    const root = this.pools.get(pool)
    if (root === undefined) throw new Error(`pool ${JSON.stringify(pool)} is not served by this node`)
    return path.join(root, 'volumes')
  }

  /** The directory that holds a volume's data. `id` must already be validated. */
  volumeDir(id: string, pool = DEFAULT_POOL): string {
    return path.join(this.volumesDirOf(pool), id)
  }

  /** The sparse file behind an image (or block) volume. */
  imagePath(id: string, pool = DEFAULT_POOL): string {
    return path.join(this.imagesDirOf(pool), `${id}.img`)
  }

  imagesDirOf(pool: string): string {
    const root = this.pools.get(pool)
    if (root === undefined) throw new Error(`pool ${JSON.stringify(pool)} is not served by this node`)
    return path.join(root, 'images')
  }

  /** Where a snapshot's copy lives: a directory tree (dir volumes) or an image file. */
  snapshotPath(id: string, pool: string, kind: VolumeKind): string {
    return path.join(this.snapshotsDirOf(pool), kind === 'image' ? `${id}.img` : id)
  }

  snapshotsDirOf(pool: string): string {
    return path.join(this.pools.get(pool) ?? this.dataRoot, 'snapshots')
  }

  /** Records of where volumes are staged (node/staging-notes.ts), kept with the pool's data. */
  stagedDirOf(pool: string): string {
    return path.join(this.pools.get(pool) ?? this.dataRoot, 'staged')
  }

  /** Notes of volume data kept by onDelete: retain (node/orphans.ts). */
  retainedDirOf(pool: string): string {
    return path.join(this.pools.get(pool) ?? this.dataRoot, 'retained')
  }

  /** The note that a volume's data was kept by onDelete: retain; it holds the volume's name. */
  retainedNoteOf(pool: string, id: string): string {
    return path.join(this.retainedDirOf(pool), id)
  }

  /** Where retired volume data goes with onDelete: archive. */
  archiveDir(pool: string): string {
    return path.join(this.pools.get(pool) ?? this.dataRoot, 'archive')
  }

  /** A volume's archived data: `<id>-<timestamp>` (`.img` for an image), so archives never collide. */
  archivePathOf(pool: string, id: string, at: Date, image: boolean): string {
    return path.join(this.archiveDir(pool), `${id}-${at.toISOString().replace(/[:.]/g, '-')}${image ? '.img' : ''}`)
  }

  /**
   * What this node knows of the nfs volumes it stages (node/nfs.ts): one note per volume, kept
   * in the default pool so it survives a restarted container, as staging notes do.
   */
  nfsNotesDir(): string {
    return path.join(this.dataRoot, 'nfs')
  }

  nfsNoteOf(id: string): string {
    return path.join(this.nfsNotesDir(), id)
  }

  /** Where the node mounts an export's share to make or remove one volume's directory. */
  nfsWorkDirOf(id: string): string {
    return path.join(this.dataRoot, 'nfs-work', id)
  }

  /** A pool's root with symlinks resolved (as written if it cannot be resolved). */
  realRootOf(pool: string): string {
    const root = this.pools.get(pool) ?? this.dataRoot
    try {
      return realpathSync.native(root)
    } catch {
      return root
    }
  }

  /** Every pool root as written and with symlinks resolved (computed once; roots exist after start-up). */
  allRoots(): string[] {
    const out: string[] = []
    for (const [name, root] of this.pools) {
      out.push(root)
      let real = this.real.get(name)
      if (real === undefined) {
        try {
          real = realpathSync.native(root)
          this.real.set(name, real)
        } catch {
          continue
        }
      }
      if (real !== root) out.push(real)
    }
    return out
  }
}
