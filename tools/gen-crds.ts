// Writes the CRDs of common/store/crds.ts into a folder (default: the Helm chart's crds/), and
// removes any other tscsi.dev_*.yaml there, so a CRD dropped from the source leaves no stale
// file. scripts/gen-crds.sh runs it and then renders deploy/kubernetes from the chart.
//   node dist/tools/gen-crds.js [DIR]
import { readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { crdFiles } from '../common/store/crds.js'
import { GROUP } from '../common/store/resources.js'

// dist/tools/gen-crds.js -> the checkout's root.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const dir = path.resolve(process.argv[2] ?? path.join(root, 'deploy/helm/tscsi/crds'))
const files = crdFiles()
for (const f of readdirSync(dir)) {
  if (f.startsWith(`${GROUP}_`) && f.endsWith('.yaml') && !files.has(f)) rmSync(path.join(dir, f))
}
for (const [f, text] of files) writeFileSync(path.join(dir, f), text)
process.stderr.write(`gen-crds: wrote ${[...files.keys()].join(', ')} in ${dir}\n`)
