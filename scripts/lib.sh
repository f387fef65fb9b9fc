# Shared helpers for the project's scripts. Tools fetched at test time live in .tools/ (git-ignored)
# and are reused when present, so a fresh machine needs only the registries.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
export GOBIN="$TOOLS/bin"
export PATH="$GOBIN:$PATH"
CSI_SANITY_VERSION=v5.4.0

ensure_csi_sanity() {
  if [ -x "$GOBIN/csi-sanity" ] && [ "$(cat "$TOOLS/csi-sanity.version" 2>/dev/null)" = "$CSI_SANITY_VERSION" ]; then return 0; fi
  mkdir -p "$GOBIN"
  echo "installing csi-sanity $CSI_SANITY_VERSION into $GOBIN" >&2
  go install "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$CSI_SANITY_VERSION" >&2
  echo "$CSI_SANITY_VERSION" > "$TOOLS/csi-sanity.version"
}

ensure_built() {
  if [ ! -d "$ROOT/node_modules" ]; then (cd "$ROOT" && npm ci --no-audit --no-fund >&2); fi
  (cd "$ROOT" && npx tsc -p tsconfig.json >&2)
}

# wait_for_socket PATH: the gRPC servers create their socket once they listen.
wait_for_socket() {
  for _ in $(seq 1 100); do [ -S "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2
  return 1
}
