// Where things are. The harness runs from dist/bench/, two levels below the package root.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const DIST = path.join(ROOT, 'dist')
/** Results and profiles of the last runs (git-ignored, beside the tools the bench installs). */
export const OUT_DIR = path.join(ROOT, '.tools', 'bench')
