#!/usr/bin/env bash
# Puts everything the end-to-end cluster needs onto this machine, reusing what is already there:
#   Debian packages   containerd 1.6, runc, the CNI plugins, busybox-static (images), etcd-server:
#                     scripts/setup.sh, from the package table in scripts/setup.sh
#   .tools/bin        kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
#                     (scripts/k8s-tools.sh cluster); csi-provisioner, csi-resizer, csi-snapshotter,
#                     snapshot-controller (wrapper modules in scripts/e2e-tools/, from the Go module
#                     proxy); csi-node-driver-registrar (see build_registrar)
#   .tools/e2e/images pause.tar and busybox.tar, docker-archive images made here (scripts/e2e/images.sh)
# A binary is rebuilt only when its wrapper module, the Go version or the flags change (a stamp beside
# it records them). Usage: bash scripts/e2e/tools.sh   (timings on stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
MODS="$ROOT/scripts/e2e-tools"
mkdir -p "$BIN" "$TOOLS/e2e"
exec 8>"$TOOLS/e2e-tools.lock"
flock 8

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "e2e-tools: $*" >&2; }

# --- Debian packages: the one set-up step (the package table in scripts/setup.sh) ---------------------------
ensure_packages() { bash "$ROOT/scripts/setup.sh"; }

export CGO_ENABLED=0 GOTOOLCHAIN=local
GO_VERSION="$(go env GOVERSION)"

# build MODULE_DIR NAME PACKAGE [GOFLAGS]: builds PACKAGE inside MODULE_DIR into $BIN/NAME.
build() {
  local dir="$1" name="$2" pkg="$3" flags="${4:--mod=readonly}" t0 want stamp="$TOOLS/$2.stamp"
  t0="$(now)"
  want="$GO_VERSION $pkg $flags $(cat "$dir/go.mod" "$dir/go.sum" 2>/dev/null | sha256sum | cut -c1-16)"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  log "building $name ($pkg) ..."
  (cd "$dir" && GOFLAGS="$flags -buildvcs=false" go build -trimpath -ldflags "-s -w" -o "$BIN/.$name.tmp" "$pkg")
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  echo "$want" >"$stamp"
  log "built $name in $(elapsed "$t0")s"
}

# The Go module proxy refuses github.com/kubernetes-csi/node-driver-registrar at every version (403,
# like livenessprobe, whose drop-in tscsi-metrics the manifests run instead). Its repository vendors
# its dependencies, so a local clone (NDR_SRC_GIT, or the search tool's mirror under /work/.mirror)
# builds offline with -mod=vendor. Without one the registrar scenario fails and says why.
NDR_VERSION=v2.13.0 # the registrar the README names for those who run it instead of --registration-dir
build_registrar() {
  local src="$TOOLS/e2e/ndr-src" git="${NDR_SRC_GIT:-}" d
  if [ -x "$BIN/csi-node-driver-registrar" ] && [ "$(cat "$TOOLS/csi-node-driver-registrar.stamp" 2>/dev/null)" = "$GO_VERSION $NDR_VERSION" ]; then return 0; fi
  if [ -z "$git" ]; then
    for d in /work/.mirror/kubernetes-csi+node-driver-registrar*; do
      [ -d "$d" ] && git="$(find "$d" -maxdepth 2 -name HEAD -printf '%h\n' | head -1)"
    done
  fi
  if [ -z "$git" ]; then
    log "no node-driver-registrar: the Go module proxy refuses it and no clone was found (set NDR_SRC_GIT)"
    return 0
  fi
  rm -rf "$src" && mkdir -p "$src"
  git --git-dir="$git" archive "$NDR_VERSION" | tar -x -C "$src"
  local t0; t0="$(now)"
  (cd "$src" && GOFLAGS="-mod=vendor -buildvcs=false" go build -trimpath \
    -ldflags "-s -w -X main.version=$NDR_VERSION" -o "$BIN/csi-node-driver-registrar" ./cmd/csi-node-driver-registrar)
  echo "$GO_VERSION $NDR_VERSION" >"$TOOLS/csi-node-driver-registrar.stamp"
  log "built csi-node-driver-registrar $NDR_VERSION from $git in $(elapsed "$t0")s"
}

T0="$(now)"
ensure_packages
bash "$ROOT/scripts/k8s-tools.sh" cluster
build "$MODS/provisioner" csi-provisioner github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner
build "$MODS/resizer" csi-resizer github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer
build "$MODS/snapshotter" csi-snapshotter github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter
build "$MODS/snapshotter" snapshot-controller github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller
build_registrar
bash "$ROOT/scripts/e2e/images.sh"
log "all e2e tools ready in $(elapsed "$T0")s"
