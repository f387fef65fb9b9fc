#!/usr/bin/env bash
# Builds kubernetes-csi's hostpathplugin (csi-driver-host-path v1.16.1), the comparison driver of
# the benchmarks, into .tools/bin/hostpathplugin through the wrapper module in
# scripts/hostpath-tools/ (see the comment in its go.mod: the plugin's source is kept in
# .tools/hostpath-src, from the module proxy or a local clone, because the proxy refuses it; its
# dependencies come from the proxy, with the k8s.io staging replaces repeated in the wrapper).
#
# Idempotent: the binary is rebuilt only when the wrapper module's files, the Go version or the
# build flags change (a stamp beside it records them), so a second run takes well under a second.
# The output goes to .tools/ (git-ignored); the compile cache is Go's default one.
# Usage: bash scripts/hostpath-tools.sh     (prints the binary's path on stdout, timings on stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
MOD="$ROOT/scripts/hostpath-tools"
NAME=hostpathplugin
PKG=github.com/kubernetes-csi/csi-driver-host-path/cmd/hostpathplugin
mkdir -p "$BIN"

# Two runs at once would race on the same output.
exec 9>"$TOOLS/hostpath-tools.lock"
flock 9

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "hostpath-tools: $*" >&2; }

command -v go >/dev/null || { log "go is not on PATH: hostpathplugin is built from Go sources"; exit 1; }
VERSION="$(awk '$1 == "require" && $2 == "github.com/kubernetes-csi/csi-driver-host-path" { print $3; exit }
               $1 == "github.com/kubernetes-csi/csi-driver-host-path" && $2 ~ /^v/ { print $2; exit }' "$MOD/go.mod")"
[ -n "$VERSION" ] || { log "cannot read the csi-driver-host-path version from $MOD/go.mod"; exit 1; }

export CGO_ENABLED=0    # a static binary, as upstream's release images carry
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"  # go.sum is committed and complete
LDFLAGS="-s -w -X main.version=$VERSION"
GO_VERSION="$(go env GOVERSION)"

# The plugin's source, unpacked into .tools/hostpath-src: from the Go module proxy when it serves
# the module, else from a local clone of the repository (HOSTPATH_SRC_GIT, a git dir with tags).
fetch_source() {
  local src="$TOOLS/hostpath-src"
  [ -f "$src/go.mod" ] && return 0
  rm -rf "$src" && mkdir -p "$src"
  local dir
  if dir="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/kubernetes-csi/csi-driver-host-path@$VERSION" 2>/dev/null | awk -F'"' '/"Dir"/ {print $4}')" && [ -n "$dir" ]; then
    cp -a "$dir/." "$src/" && chmod -R u+w "$src" && return 0
  fi
  local git="${HOSTPATH_SRC_GIT:-}"
  [ -z "$git" ] && for d in /work/.mirror/kubernetes-csi+csi-driver-host-path*; do [ -d "$d" ] && git="$(find "$d" -maxdepth 2 -name HEAD -printf '%h\n' | head -1)"; done
  if [ -n "$git" ] && git --git-dir="$git" archive "$VERSION" 2>/dev/null | tar -x -C "$src"; then
    log "took csi-driver-host-path $VERSION from $git (the module proxy did not serve it)"
    return 0
  fi
  rm -rf "$src"
  log "cannot get csi-driver-host-path $VERSION: the Go module proxy refuses it (403 here) and no local clone was found (set HOSTPATH_SRC_GIT to one)"
  exit 1
}

t0="$(now)"
stamp="$TOOLS/$NAME.stamp"
want="$VERSION $GO_VERSION $(cd "$MOD" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16) $(sha256sum <<<"$LDFLAGS $CGO_ENABLED" | cut -c1-8)"
if [ -x "$BIN/$NAME" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  log "$NAME $VERSION up to date ($(elapsed "$t0")s)"
else
  fetch_source
  rm -rf "$TOOLS/hostpath-mod" && mkdir -p "$TOOLS/hostpath-mod" && cp "$MOD/go.mod" "$MOD/go.sum" "$TOOLS/hostpath-mod/"
  log "building $NAME $VERSION with $GO_VERSION (a cold build takes a minute or two) ..."
  (cd "$TOOLS/hostpath-mod" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/.$NAME.tmp" "$PKG")
  mv -f "$BIN/.$NAME.tmp" "$BIN/$NAME"
  echo "$want" >"$stamp"
  log "built $NAME $VERSION in $(elapsed "$t0")s ($(du -h "$BIN/$NAME" | cut -f1))"
fi
# It stages and publishes by exec'ing mount(8)/umount(8) and reads the table with findmnt(8).
for tool in mount umount findmnt; do
  command -v "$tool" >/dev/null || log "warning: $tool is not on PATH; hostpathplugin needs it (Debian: util-linux / mount)"
done
echo "$BIN/$NAME"
