// Where things live under the node's data root. Every path here is built from validated ids
// only (see common/validate.ts), so nothing a request says can point outside the root.
import { realpathSync } from 'node:fs'
import path from 'node:path'

export class Layout {
  readonly volumesDir: string

  constructor(readonly dataRoot: string) {
    this.volumesDir = path.join(dataRoot, 'volumes')
  }

  private real: string | undefined

  /** The data root with symlinks resolved (computed once; the root exists after start-up). */
  realDataRoot(): string {
    if (this.real === undefined) {
      try {
        this.real = realpathSync.native(this.dataRoot)
      } catch {
        return this.dataRoot
      }
    }
    return this.real
  }

  /** The directory that holds a dir volume's data. `id` must already be validated. */
  volumeDir(id: string): string {
    return path.join(this.volumesDir, id)
  }
}
