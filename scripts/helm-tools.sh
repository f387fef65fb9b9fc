#!/usr/bin/env bash
# Puts helm v3 into .tools/bin/helm for the chart's tests (test/unit-helm.test.ts) and for
# scripts/render-manifests.sh. Built from the Go module proxy through the wrapper module in
# scripts/helm-tools/ (helm.sh/helm/v3, pinned by its go.mod and go.sum): no release tarball can be
# downloaded here, and the proxy serves helm's sources.
# Idempotent: the binary is rebuilt only when the wrapper module, the Go version or the build flags
# change (a stamp beside it records them), so a second run takes well under a second. Build outputs
# go to .tools/ (git-ignored); the compile cache is Go's default one.
# Usage: bash scripts/helm-tools.sh   (prints one timing line on stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
MOD="$ROOT/scripts/helm-tools"
mkdir -p "$BIN"

# Two test processes or shells at once would race on the same output.
exec 9>"$TOOLS/helm-tools.lock"
flock 9

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "helm-tools: $*" >&2; }

modver() { awk -v m="$1" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$MOD/go.mod"; }
HELM_VERSION="$(modver helm.sh/helm/v3)"
CLIENT_GO="$(modver k8s.io/client-go)" # v0.N.x is Kubernetes 1.N
[ -n "$HELM_VERSION" ] && [ -n "$CLIENT_GO" ] || { log "cannot read helm's or client-go's version from $MOD/go.mod"; exit 1; }
K8S_MINOR="$(cut -d. -f2 <<<"$CLIENT_GO")"
# What helm's Makefile stamps: `helm version` tells the truth, and `helm template`/`helm lint`
# assume the Kubernetes version helm's client libraries speak rather than the 1.20 fallback.
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  LDFLAGS+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$K8S_MINOR"
done
export CGO_ENABLED=0    # a static binary, as helm releases are; no C toolchain needed
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"  # go.sum is committed and complete
command -v go >/dev/null || { log "go is not on PATH: helm is built from Go sources"; exit 1; }
GO_VERSION="$(go env GOVERSION)"

t0="$(now)"
stamp="$TOOLS/helm.stamp"
want="$HELM_VERSION $GO_VERSION $(cat "$MOD/go.mod" "$MOD/go.sum" | sha256sum | cut -c1-16) $(sha256sum <<<"$LDFLAGS $CGO_ENABLED" | cut -c1-8)"
if [ -x "$BIN/helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  log "helm $HELM_VERSION up to date ($(elapsed "$t0")s)"
  exit 0
fi
log "building helm $HELM_VERSION with $GO_VERSION (a cold build takes minutes) ..."
(cd "$MOD" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/.helm.tmp" helm.sh/helm/v3/cmd/helm)
mv -f "$BIN/.helm.tmp" "$BIN/helm"
echo "$want" >"$stamp"
log "built helm $HELM_VERSION in $(elapsed "$t0")s ($(du -h "$BIN/helm" | cut -f1))"
