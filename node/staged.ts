// Where each volume is staged. The kernel's mount table says which paths show a volume, but not
// which of them is the staging mount and which are publications: both are binds of the same
// root. NodeUnpublishVolume must never take a staging mount for a pod's (a CO that sends the
// staging path there would otherwise unmount it under every pod and remove the CO's folder), so
// NodeStageVolume notes the path before it mounts and NodeUnstageVolume drops the note after it
// unmounts. The notes live in the pool beside the data, so they survive a restarted node plugin
// container (its own filesystem does not). A note left by a crash after the unmount only makes an
// unpublish of that exact path refuse until the volume is staged or unstaged there again.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fromNodeError } from '../native/index.js'
import type { Layout } from './layout.js'
import type { Located } from './locate.js'

export class StagingNotes {
  constructor(private readonly layout: Layout) {}

  private file(vol: Pick<Located, 'id' | 'pool'>, staging: string): string {
    const h = createHash('sha256').update(staging).digest('hex').slice(0, 16)
    return path.join(this.layout.stagedDirOf(vol.pool), `${vol.id}@${h}`)
  }

  /** Records that vol is (about to be) staged at staging. Written before the mount exists. */
  note(vol: Pick<Located, 'id' | 'pool'>, staging: string): void {
    const f = this.file(vol, staging)
    try {
      mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 })
      writeFileSync(`${f}.tmp`, staging, { mode: 0o600 })
      renameSync(`${f}.tmp`, f)
    } catch (e) {
      throw fromNodeError(e, 'write', f)
    }
  }

  /** Drops the record; called once nothing is mounted at staging any more. */
  forget(vol: Pick<Located, 'id' | 'pool'>, staging: string): void {
    rmSync(this.file(vol, staging), { force: true })
  }

  /** True when vol was staged at p (the file holds the path itself, so a hash clash cannot lie). */
  isStaging(vol: Pick<Located, 'id' | 'pool'>, p: string): boolean {
    try {
      return readFileSync(this.file(vol, p), 'utf8') === p
    } catch {
      return false
    }
  }
}
