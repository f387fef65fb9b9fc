# Sourced by scripts/image.sh: the image's first layer, a Debian bookworm root made by debootstrap
# from the mirror apt uses here, with the image-scope packages of the table in scripts/setup.sh (read
# through `scripts/setup.sh --list --image`, the one list the Dockerfile installs too) and nothing
# a running driver does not need, upgraded from bookworm-updates and bookworm-security. Cached in
# $CACHE/base-KEY; rebuilt only when the list, the mirrors or this file changes (the stamp records
# them). Remove .tools/images/cache/base-* to take in Debian updates published since.

# debian_mirror [SUITE]: the mirror apt's sources (deb822 .sources or one-line .list) use for SUITE
# (default bookworm), or $TSCSI_DEBIAN_MIRROR / $TSCSI_DEBIAN_SECURITY_MIRROR. debootstrap and apt
# must fetch from where the host's apt does: nothing else is reachable.
debian_mirror() {
  local suite="${1:-bookworm}" m
  case "$suite" in
    bookworm) m="${TSCSI_DEBIAN_MIRROR:-}" ;;
    bookworm-security) m="${TSCSI_DEBIAN_SECURITY_MIRROR:-}" ;;
  esac
  [ -z "$m" ] && m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v want="$suite" '
    /^[ \t]*$/ { uri = ""; suite = 0; next }
    $1 == "deb" { l = $0; gsub(/\[[^]]*\]/, "", l); split(l, f); if (f[3] == want) { print f[2]; exit } next }
    $1 == "URIs:" { uri = $2 }
    $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == want) suite = 1 }
    uri != "" && suite { print uri; exit }')"
  [ -n "$m" ] || { log "no $suite mirror in /etc/apt/sources.list*; set TSCSI_DEBIAN_MIRROR / TSCSI_DEBIAN_SECURITY_MIRROR"; return 1; }
  echo "$m"
}

# upgrade_root DIR MIRROR SECURITY: debootstrap installs the point release; a driver image also
# wants bookworm-updates and the security fixes since. apt runs inside the root, in a private mount
# namespace with /proc and the host's CA certificates bound in (an https mirror needs them; the
# root has no ca-certificates), and with daemons forbidden to start.
upgrade_root() {
  local r="$1"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' "$2" "$2" "$3" >"$r/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d" && chmod 755 "$r/usr/sbin/policy-rc.d"
  mkdir -p "$r/etc/ssl/certs"
  unshare -m --propagation private bash "$HERE/../own-mounts.sh" "$r" sh -c 'mount -t proc proc "$1/proc" && mount --bind -o ro /etc/ssl/certs "$1/etc/ssl/certs" &&
    chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive sh -c \
      "apt-get update -q && apt-get -y -q --no-install-recommends upgrade && apt-get clean"' sh "$r" >>"$r.log" 2>&1 ||
    { log "apt-get upgrade in the base root failed; last lines of $r.log:"; tail -20 "$r.log" >&2; return 1; }
  rm -f "$r/usr/sbin/policy-rc.d"
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
  local dir mirror security pkgs want t0 root
  mirror="$(debian_mirror)"
  security="$(debian_mirror bookworm-security)"
  mapfile -t pkgs < <(bash "$ROOT/scripts/setup.sh" --list --image)
  [ "${#pkgs[@]}" -gt 0 ] || { log "scripts/setup.sh --list --image named no package"; return 1; }
  want="bookworm $mirror $security ${pkgs[*]} $(hash_of "${BASH_SOURCE[0]}")"
  # Keyed by the stamp: work trees share .tools, and one on an older list or script must not make
  # the other rebuild its base every time.
  dir="$CACHE/base-$(echo "$want" | sha256sum | cut -c1-12)"
  BASE_LAYER="$dir/base.tar"
  if [ -f "$BASE_LAYER" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$want" ]; then touch "$dir"; return 0; fi
  find "$CACHE" -maxdepth 1 -name 'base-*' -mtime +6 -exec rm -rf {} +
  command -v debootstrap >/dev/null || { log "debootstrap is missing (Debian package debootstrap)"; return 1; }
  [ "$(id -u)" = 0 ] || { log "building the base root needs root (debootstrap)"; return 1; }
  t0="$(now)"
  rm -rf "$dir" && mkdir -p "$dir"
  root="$dir/root"
  log "debootstrap bookworm from $mirror with ${pkgs[*]} ..."
  # debootstrap mounts /proc and /sys inside the root; in a private mount namespace a failure
  # half-way cannot leave them mounted on the host (and own-mounts.sh lets go of the host's).
  unshare -m --propagation private bash "$HERE/../own-mounts.sh" "$dir" debootstrap --variant=minbase --include="$(IFS=,; echo "${pkgs[*]}")" \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { log "debootstrap failed; last lines of $root.log:"; tail -20 "$root.log" >&2; return 1; }
  log "debootstrap done in $(elapsed "$t0")s; apt-get upgrade from bookworm-updates and bookworm-security ..."
  upgrade_root "$root" "$mirror" "$security"
  trim_root "$root"
  add_nonroot "$root"
  layer_tar "$root" "$BASE_LAYER" keep-owners
  rm -rf "$root"
  echo "$want" >"$dir/stamp"
  log "base root: $(numfmt --to=iec-i --suffix=B "$(stat -c %s "$BASE_LAYER")") in $(elapsed "$t0")s"
}
