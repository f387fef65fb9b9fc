#!/usr/bin/env bash
# Writes the CRDs into the Helm chart (deploy/helm/tscsi/crds) from their one source, the schemas
# of common/store/model.ts with the rest of each CRD in common/store/crds.ts, and then renders
# deploy/kubernetes from the chart (scripts/render-manifests.sh). The TypeScript types of the
# stored objects are inferred from the same schemas, so the code and the CRDs cannot disagree on
# a field (the API server would prune one its CRD lacks). Edit model.ts or crds.ts, then run this
# (npm run gen:crds); test/unit-crds.test.ts fails while the committed files differ from a fresh
# generation, and test/unit-helm.test.ts while deploy/kubernetes differs from the chart.
# Usage: bash scripts/gen-crds.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The generator is TypeScript: build dist/ first (node 20 runs no .ts itself).
npx tsc -p tsconfig.json
node dist/tools/gen-crds.js deploy/helm/tscsi/crds
bash scripts/render-manifests.sh
