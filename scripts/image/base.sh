# Sourced by scripts/image.sh: the image's first layer, a Debian bookworm root made by debootstrap
# from the mirror apt uses here, with the image-scope packages of deploy/debian-packages.txt (read
# through `scripts/setup.sh --list --image`, the one list the Dockerfile installs too) and nothing
# a running driver does not need. Cached in $CACHE/base; rebuilt only when the list, the mirror or
# this file changes (the stamp records them).

# debian_mirror: the bookworm mirror of apt's sources (deb822 .sources or one-line .list), or
# $TSCSI_DEBIAN_MIRROR. debootstrap must fetch from where apt does: nothing else is reachable.
debian_mirror() {
  if [ -n "${TSCSI_DEBIAN_MIRROR:-}" ]; then echo "$TSCSI_DEBIAN_MIRROR"; return; fi
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
    /^[ \t]*$/ { uri = ""; suite = 0; next }
    $1 == "deb" { l = $0; gsub(/\[[^]]*\]/, "", l); split(l, f); if (f[3] == "bookworm") { print f[2]; exit } next }
    $1 == "URIs:" { uri = $2 }
    $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
    uri != "" && suite { print uri; exit }')"
  [ -n "$m" ] || { log "no bookworm mirror in /etc/apt/sources.list*; set TSCSI_DEBIAN_MIRROR"; return 1; }
  echo "$m"
}

# trim_root DIR: what a container never uses. /dev, /proc, /sys and /run are the runtime's;
# resolv.conf and hostname are the host's (debootstrap copies them in) and the runtime mounts its
# own. Copyright files stay: they are the licences of what the image ships.
trim_root() {
  local r="$1"
  rm -rf "${r:?}"/dev/* "$r"/proc/* "$r"/sys/* "$r"/run/* "$r"/tmp/* "$r"/var/tmp/*
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  rm -rf "$r"/var/log/* "$r"/var/cache/ldconfig/aux-cache "$r"/etc/resolv.conf "$r"/etc/hostname "$r"/etc/machine-id
  rm -rf "$r"/usr/share/man "$r"/usr/share/info "$r"/usr/share/lintian "$r"/usr/share/linda "$r"/usr/share/locale/*
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  # A later `apt-get install` in a derived image keeps the trim (as Debian's docker images do).
  cat >"$r/etc/dpkg/dpkg.cfg.d/tscsi-excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  cat >"$r/etc/apt/apt.conf.d/tscsi-no-cache" <<'EOF'
APT::Keep-Downloaded-Packages "false";
EOF
}

# The user the controller and the metrics sidecar run as (the Dockerfile's USER, the manifests'
# runAsUser): named, so tools that look the user up find one, with a home it owns.
add_nonroot() {
  local r="$1"
  grep -q '^nonroot:' "$r/etc/passwd" || echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$r/etc/passwd"
  grep -q '^nonroot:' "$r/etc/group" || echo 'nonroot:x:65532:' >>"$r/etc/group"
  grep -q '^nonroot:' "$r/etc/shadow" || echo 'nonroot:!:19000::::::' >>"$r/etc/shadow"
  install -d -m 0700 -o 65532 -g 65532 "$r/home/nonroot"
}

# ensure_base: sets BASE_LAYER to the cached base layer, building it when its stamp is stale.
ensure_base() {
  local dir="$CACHE/base" mirror pkgs want t0 root
  mirror="$(debian_mirror)"
  mapfile -t pkgs < <(bash "$ROOT/scripts/setup.sh" --list --image)
  [ "${#pkgs[@]}" -gt 0 ] || { log "scripts/setup.sh --list --image named no package"; return 1; }
  want="bookworm $mirror ${pkgs[*]} $(hash_of "${BASH_SOURCE[0]}")"
  BASE_LAYER="$dir/base.tar"
  if [ -f "$BASE_LAYER" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  command -v debootstrap >/dev/null || { log "debootstrap is missing (Debian package debootstrap)"; return 1; }
  [ "$(id -u)" = 0 ] || { log "building the base root needs root (debootstrap)"; return 1; }
  t0="$(now)"
  rm -rf "$dir" && mkdir -p "$dir"
  root="$dir/root"
  log "debootstrap bookworm from $mirror with ${pkgs[*]} ..."
  # debootstrap mounts /proc and /sys inside the root; in a private mount namespace a failure
  # half-way cannot leave them mounted on the host.
  unshare -m --propagation private debootstrap --variant=minbase --include="$(IFS=,; echo "${pkgs[*]}")" \
    bookworm "$root" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    { log "debootstrap failed; last lines of $dir/debootstrap.log:"; tail -20 "$dir/debootstrap.log" >&2; return 1; }
  trim_root "$root"
  add_nonroot "$root"
  layer_tar "$root" "$BASE_LAYER" keep-owners
  rm -rf "$root"
  echo "$want" >"$dir/stamp"
  log "base root: $(numfmt --to=iec-i --suffix=B "$(stat -c %s "$BASE_LAYER")") in $(elapsed "$t0")s"
}
