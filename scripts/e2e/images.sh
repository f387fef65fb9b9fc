#!/usr/bin/env bash
# Makes the two container images the e2e cluster runs, without a registry or a Docker engine: a
# one-layer root filesystem holding Debian's static busybox and its applet links, written as a
# docker-archive tarball (`docker save` layout: manifest.json, config, layer.tar) that
# `ctr images import` reads.
#   .tools/e2e/images/busybox.tar  tscsi-e2e.local/busybox:1  the pods' image (sh, df, dd, mount, ...)
#   .tools/e2e/images/pause.tar    tscsi-e2e.local/pause:1    containerd's sandbox_image: a shell
#                                  that sleeps until it is told to stop, as pause does
# Rebuilt only when busybox changes. Usage: bash scripts/e2e/images.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/.tools/e2e/images"
BUSYBOX=/bin/busybox
mkdir -p "$OUT"
[ -x "$BUSYBOX" ] && "$BUSYBOX" --list >/dev/null || { echo "images: $BUSYBOX (busybox-static) is missing" >&2; exit 1; }
# Debian's dynamic busybox could sit at the same path; the image needs the static one.
if file -L "$BUSYBOX" 2>/dev/null | grep -q dynamically; then echo "images: $BUSYBOX is not static" >&2; exit 1; fi

want="$(sha256sum "$BUSYBOX" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [ -f "$OUT/pause.tar" ] && [ -f "$OUT/busybox.tar" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/etc" "$work/rootfs/data"
cp "$BUSYBOX" "$work/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"
done
chmod 1777 "$work/rootfs/tmp"
echo 'root:x:0:0:root:/:/bin/sh' >"$work/rootfs/etc/passwd"
echo 'root:x:0:' >"$work/rootfs/etc/group"
# Fixed owners and times: the same busybox always gives the same layer digest.
tar -C "$work/rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$work/layer.tar" .
layer_sha="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"

# image NAME REF ENTRYPOINT_JSON: writes $OUT/NAME.tar
image() {
  local name="$1" ref="$2" entry="$3" dir="$work/$1" cfg_sha
  mkdir -p "$dir/$layer_sha"
  cp "$work/layer.tar" "$dir/$layer_sha/layer.tar"
  cat >"$dir/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Env":["PATH=/bin"],"Entrypoint":$entry,"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_sha"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/e2e/images.sh: busybox-static"}]}
EOF
  cfg_sha="$(sha256sum "$dir/config.json" | cut -d' ' -f1)"
  mv "$dir/config.json" "$dir/$cfg_sha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg_sha" "$ref" "$layer_sha" >"$dir/manifest.json"
  # Entries named as `docker save` names them (no leading ./), which importers match literally.
  (cd "$dir" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$OUT/.$name.tar" -- *)
  mv -f "$OUT/.$name.tar" "$OUT/$name.tar"
}
image busybox tscsi-e2e.local/busybox:1 '["/bin/sh"]'
# PID 1 ignores signals it has no handler for, so the trap is what lets the sandbox stop at once.
image pause tscsi-e2e.local/pause:1 '["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]'
echo "$want" >"$OUT/stamp"
echo "images: built busybox.tar and pause.tar in $OUT" >&2
