# Sourced by scripts/image.sh and its helpers: deterministic layers and the docker-archive writer.
# The archive is the `docker save` layout scripts/e2e/images.sh also writes (manifest.json, one
# config named by its sha256, LAYER_SHA/layer.tar per layer), which `ctr images import` reads.
# Layers and configs carry fixed times, so the same inputs always give the same digests.

log() { echo "image: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# hash_of FILE...: one short hash of the files' contents (not their paths, which differ by caller).
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# layer_tar DIR OUT [keep-owners]: DIR's contents as a tar with sorted names and time 0. Files
# belong to root unless keep-owners: a Debian root has files of other owners (shadow, mail, staff)
# that must stay theirs.
layer_tar() {
  local dir="$1" out="$2" owners=(--owner=0 --group=0)
  [ "${3:-}" = keep-owners ] && owners=()
  # The "./" entry is the image's /: a staging folder from mktemp is 0700, which would lock every
  # user but root out of the whole image.
  chmod 0755 "$dir"
  tar -C "$dir" --sort=name "${owners[@]}" --numeric-owner --mtime=@0 --format=gnu -cf "$out.tmp" .
  mv -f "$out.tmp" "$out"
}

# json_strings A B ...: a JSON array of strings (none of ours holds a quote or a backslash).
json_strings() {
  local out="" s
  for s in "$@"; do out+="${out:+,}\"$s\""; done
  echo "[$out]"
}

# write_archive OUT REF CONFIG_FRAGMENT CREATED_BY LAYER_TAR...: writes the docker-archive OUT for
# image REF. CONFIG_FRAGMENT is the JSON members of the image's runtime config (Env, Entrypoint,
# User, ...). Layers are hard-linked into the staging folder when they can be, not copied: the
# base layer is hundreds of MB and lives in the cache beside OUT.
write_archive() {
  local out="$1" ref="$2" fragment="$3" created_by="$4" dir diff_ids="" layers="" history="" l s cfg
  shift 4
  dir="$(mktemp -d "$(dirname "$out")/.archive.XXXXXX")"
  for l in "$@"; do
    s="$(sha "$l")"
    mkdir -p "$dir/$s"
    ln "$l" "$dir/$s/layer.tar" 2>/dev/null || cp "$l" "$dir/$s/layer.tar"
    diff_ids+="${diff_ids:+,}\"sha256:$s\""
    layers+="${layers:+,}\"$s/layer.tar\""
    history+="${history:+,}{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"$created_by: $(basename "$l" .tar)\"}"
  done
  cat >"$dir/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{$fragment},
 "rootfs":{"type":"layers","diff_ids":[$diff_ids]},
 "history":[$history]}
EOF
  cfg="$(sha "$dir/config.json")"
  mv "$dir/config.json" "$dir/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]\n' "$cfg" "$ref" "$layers" >"$dir/manifest.json"
  # Entries named as `docker save` names them (no leading ./), which importers match literally.
  (cd "$dir" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$out.tmp" -- *)
  mv -f "$out.tmp" "$out"
  rm -rf "$dir"
}

# gz_size LAYER: the layer's gzipped size, as a registry stores it; kept beside the layer (a layer
# file never changes once written) so a second tag does not compress 300 MB again.
gz_size() {
  [ -s "$1.gz-size" ] || gzip -n -c "$1" | wc -c >"$1.gz-size"
  cat "$1.gz-size"
}

# report_size OUT LAYER...: the archive's size as imported (uncompressed) and the sum of its layers
# gzipped. Also written beside it as OUT.size for the README and the tests.
report_size() {
  local out="$1" raw gz=0 l
  shift
  raw="$(stat -c %s "$out")"
  for l in "$@"; do gz=$((gz + $(gz_size "$l"))); done
  printf 'uncompressed=%s compressed=%s\n' "$raw" "$gz" >"$out.size"
  log "$(basename "$out"): $(numfmt --to=iec-i --suffix=B "$raw") uncompressed, $(numfmt --to=iec-i --suffix=B "$gz") gzipped"
}
