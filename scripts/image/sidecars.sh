# Sourced by scripts/image.sh: one single-binary image per kubernetes-csi sidecar the e2e builds
# into .tools/bin (scripts/e2e/tools.sh). They are static Go binaries (CGO_ENABLED=0), so a layer
# holding the binary at /NAME (where upstream's images put it, so upstream's manifests' commands
# work unchanged), /etc/passwd, /etc/group and a /tmp is all they need. No CA bundle: they reach only
# the API server, whose CA the service account mounts.
#   tscsi.local/NAME:VERSION   .tools/images/NAME-VERSION.tar

SIDECARS=(csi-provisioner csi-resizer csi-snapshotter snapshot-controller csi-node-driver-registrar)

# sidecar_version NAME BINARY: the version of the kubernetes-csi module the binary was built from,
# as Go recorded it in the binary (`go version -m`); for the registrar, built from a clone whose
# main module says (devel), the version its stamp records.
sidecar_version() {
  local name="$1" bin="$2" v=""
  if command -v go >/dev/null; then
    v="$(go version -m "$bin" 2>/dev/null | awk '($1 == "dep" || $1 == "mod") && $2 ~ /^github.com\/kubernetes-csi\/(external-|node-driver-registrar)/ && $3 ~ /^v/ { print $3; exit }')"
  fi
  [ -n "$v" ] || v="$(awk '{ print $NF }' "$ROOT/.tools/$name.stamp" 2>/dev/null | grep -E '^v[0-9]' || true)"
  echo "${v:-dev}"
}

build_sidecars() {
  local name bin ver file ref want stage user built=0
  for name in "${SIDECARS[@]}"; do
    bin="$ROOT/.tools/bin/$name"
    if ! [ -x "$bin" ]; then
      log "no $bin (scripts/e2e/tools.sh builds it); no $name image"
      continue
    fi
    ver="$(sidecar_version "$name" "$bin")"
    ref="tscsi.local/$name:$ver"
    file="$OUT/$name-$ver.tar"
    want="$(hash_of "$bin" "${BASH_SOURCE[0]}" "$HERE/lib.sh")"
    built=$((built + 1))
    if [ -f "$file" ] && [ "$(cat "$file.stamp" 2>/dev/null)" = "$want" ]; then echo "$ref $file"; continue; fi
    if file -L "$bin" 2>/dev/null | grep -q 'dynamically linked'; then log "$bin is not static; a one-file image cannot run it"; return 1; fi
    stage="$(mktemp -d "$CACHE/.sidecar.XXXXXX")"
    mkdir -p "$stage/etc" "$stage/tmp"
    install -m 0755 "$bin" "$stage/$name"
    printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$stage/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n' >"$stage/etc/group"
    chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
    chmod 1777 "$stage/tmp"
    layer_tar "$stage" "$CACHE/.$name.tar"
    rm -rf "$stage"
    # The registrar writes its socket into kubelet's root-owned plugins_registry; the others need
    # no root (the manifests run them as 65532 anyway).
    user=65532:65532
    [ "$name" = csi-node-driver-registrar ] && user=0:0
    write_archive "$file" "$ref" "\"Entrypoint\":[\"/$name\"],\"User\":\"$user\",\"WorkingDir\":\"/\",
 \"Labels\":{\"org.opencontainers.image.title\":\"$name\",\"org.opencontainers.image.version\":\"$ver\"}" \
      "scripts/image.sh sidecars" "$CACHE/.$name.tar"
    report_size "$file" "$CACHE/.$name.tar"
    rm -f "$CACHE/.$name.tar" "$CACHE/.$name.tar.gz-size"
    echo "$want" >"$file.stamp"
    log "built $ref"
    echo "$ref $file"
  done
  [ "$built" -gt 0 ] || { log "no sidecar binary in $ROOT/.tools/bin: run scripts/e2e/tools.sh first"; return 1; }
}
