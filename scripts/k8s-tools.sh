#!/usr/bin/env bash
# Puts a real Kubernetes control plane's binaries into .tools/bin for the tests that run against a
# real API server (test/helpers/apiserver.ts):
#   kube-apiserver, kubectl  built from the Go module proxy through the wrapper module in
#                            scripts/k8s-tools/ (k8s.io/kubernetes and its staging modules, pinned
#                            there; see the comment in its go.mod)
#   etcd                     a link to Debian's etcd-server (3.4 on bookworm), installed with apt when
#                            missing. Chosen over building go.etcd.io/etcd/server from the proxy: it is
#                            one small package, needs no compile, and kube-apiserver 1.31 works with
#                            etcd 3.4. Against 3.4.23 it logs "RequestWatchProgress feature is not
#                            supported" (it trusts that only from etcd 3.4.31+/3.5.13+), so consistent
#                            lists are read from etcd rather than the watch cache, and watch-list
#                            streams (sendInitialEvents, off by default in clients) are refused.
# Idempotent: a binary is rebuilt only when the wrapper module's files, the Go version or the build
# flags change (a stamp beside it records them), so a second run takes about a second. Build
# outputs go to .tools/ (git-ignored); the compile cache is Go's default one.
# With the argument `cluster` it also builds what a whole node needs (kube-controller-manager,
# kube-scheduler, kubelet) for the end-to-end run (scripts/e2e.sh); the default stays the two
# binaries `npm test` uses, so the unit suite never pays for a kubelet build.
# Usage: bash scripts/k8s-tools.sh [cluster]   (prints one timing line per tool on stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
MOD="$ROOT/scripts/k8s-tools"
mkdir -p "$BIN"

# Two runs at once (two test processes, two shells) would race on the same outputs.
exec 9>"$TOOLS/k8s-tools.lock"
flock 9

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "k8s-tools: $*" >&2; }

# --- etcd (Debian) ---------------------------------------------------------------------------
ensure_etcd() {
  local t0; t0="$(now)"
  # Debian's etcd-server, installed by the one set-up step with every other package.
  [ -x /usr/bin/etcd ] || bash "$ROOT/scripts/setup.sh" || return 1
  [ -x /usr/bin/etcd ] || { log "/usr/bin/etcd is missing (Debian package etcd-server; scripts/setup.sh installs it)"; return 1; }
  ln -sfn /usr/bin/etcd "$BIN/etcd"
  log "etcd $(/usr/bin/etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p') ready in $(elapsed "$t0")s ($BIN/etcd -> /usr/bin/etcd)"
}

# --- kube-apiserver and kubectl (Go module proxy) --------------------------------------------
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$MOD/go.mod")"
[ -n "$K8S_VERSION" ] || { log "cannot read the k8s.io/kubernetes version from $MOD/go.mod"; exit 1; }
K8S_MINOR="$(cut -d. -f2 <<<"$K8S_VERSION")"
# What upstream's hack/lib/version.sh stamps, so /version and `kubectl version` tell the truth.
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR -X $pkg.gitTreeState=clean"
done
export CGO_ENABLED=0    # static binaries, as upstream releases them; no C toolchain needed
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"  # go.sum is committed and complete
command -v go >/dev/null || { log "go is not on PATH: kube-apiserver and kubectl are built from Go sources"; exit 1; }
GO_VERSION="$(go env GOVERSION)"

build_k8s() { # NAME: builds $MOD/NAME (a main package) into $BIN/NAME
  local name="$1" t0 stamp want
  t0="$(now)"
  stamp="$TOOLS/$name.stamp"
  want="$K8S_VERSION $GO_VERSION $(cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/$name/main.go" | grep -v '^//' | sha256sum | cut -c1-16) $(sha256sum <<<"$LDFLAGS $CGO_ENABLED" | cut -c1-8)"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "$name $K8S_VERSION up to date ($(elapsed "$t0")s)"
    return 0
  fi
  log "building $name $K8S_VERSION with $GO_VERSION (a cold build takes minutes) ..."
  (cd "$MOD" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/.$name.tmp" "./$name")
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  echo "$want" >"$stamp"
  log "built $name $K8S_VERSION in $(elapsed "$t0")s ($(du -h "$BIN/$name" | cut -f1))"
}

T0="$(now)"
ensure_etcd
build_k8s kube-apiserver
build_k8s kubectl
if [ "${1:-}" = cluster ]; then
  build_k8s kube-controller-manager
  build_k8s kube-scheduler
  build_k8s kubelet
fi
log "all tools ready in $(elapsed "$T0")s"
