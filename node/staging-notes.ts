// Where each volume is staged. The kernel's mount table says which paths show a volume, but not
// which of them is the staging mount and which are publications: both are binds of the same
// root. NodeUnpublishVolume must never take a staging mount for a pod's (a CO that sends the
// staging path there would otherwise unmount it under every pod and remove the CO's folder), so
// NodeStageVolume notes the path before it mounts and NodeUnstageVolume drops the note after it
// unmounts. The notes live in the pool beside the data, so they survive a restarted node plugin
// container (its own filesystem does not). A note left by a crash after the unmount only makes an
// unpublish of that exact path refuse until the volume is staged or unstaged there again.
import { createHash } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fromNodeError } from '../native/index.js'
import type { Layout } from './layout.js'
import type { Located } from './locate.js'

export class StagingNotes {
  /** Folders known to exist, so the hot path is one open. */
  private readonly made = new Set<string>()

  constructor(private readonly layout: Layout) {}

  // An empty file named by the volume and the whole sha256 of the path: existence is the record.
  // Writing content would cost a flush per stage (ext4 flushes a truncated-and-rewritten or
  // renamed-over file on close), about 170 µs against 10 µs for a bare create.
  private file(vol: Pick<Located, 'id' | 'pool'>, staging: string): string {
    const h = createHash('sha256').update(staging).digest('hex')
    return path.join(this.layout.stagedDirOf(vol.pool), `${vol.id}@${h}`)
  }

  /** Records that vol is (about to be) staged at staging. Made before the mount exists. */
  note(vol: Pick<Located, 'id' | 'pool'>, staging: string): void {
    const f = this.file(vol, staging)
    try {
      const dir = path.dirname(f)
      if (!this.made.has(dir)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 })
        this.made.add(dir)
      }
      closeSync(openSync(f, 'a', 0o600))
    } catch (e) {
      throw fromNodeError(e, 'open', f)
    }
  }

  /** Drops the record; called once nothing is mounted at staging any more. */
  forget(vol: Pick<Located, 'id' | 'pool'>, staging: string): void {
    rmSync(this.file(vol, staging), { force: true })
  }

  /** True when vol was staged at p. */
  isStaging(vol: Pick<Located, 'id' | 'pool'>, p: string): boolean {
    return existsSync(this.file(vol, p))
  }
}
