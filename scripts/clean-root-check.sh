#!/usr/bin/env bash
# Proves that a new machine passes: makes a bare Debian bookworm root from Debian's packages
# (debootstrap --variant=minbase), adds only what a machine of this project's kind comes with
# (Node.js 20 and npm, copied from this machine; the Go toolchain, bound read-only), copies in the committed tree (git archive HEAD), and inside it runs what CI runs:
# `npm ci && npm test`, with TEST_PHASES="tap sanity" (the set-up step, every tap suite and
# csi-sanity in all six modes; the real-cluster e2e needs a kubelet, which a chroot cannot host).
# The set-up step must install every package the suites need; nothing else is installed.
#   bash scripts/clean-root-check.sh            (as root; about 15 minutes; prints the last line)
# CLEAN_ROOT_DIR (default /var/tmp/tscsi-clean-root) holds the root and the log. The Go module
# and build caches of this machine are bound in (CLEAN_ROOT_GO_CACHE=0 to start them cold): they
# hold compiled Go, not Debian packages, so they cannot hide a missing install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CLEAN_ROOT_DIR:-/var/tmp/tscsi-clean-root}"
R="$DIR/root"
[ "$(id -u)" = 0 ] || { echo "clean-root-check: must run as root" >&2; exit 1; }
bash "$ROOT/scripts/setup.sh" # debootstrap itself
# The mirror apt uses here (deb822 or one-line sources).
mirror="$(sed -nE 's/^URIs: *(\S+debian)\/?$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
[ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
mirror="${mirror:-http://deb.debian.org/debian}"

# The bare root, made once and kept as it came from debootstrap; each run works on a copy of it.
BASE="$DIR/base"
t0="$(date +%s)"
if ! [ -f "$BASE/.debootstrap-done" ]; then
  rm -rf "$BASE" && mkdir -p "$BASE"
  echo "clean-root-check: debootstrap --variant=minbase bookworm $BASE $mirror" >&2
  debootstrap --variant=minbase bookworm "$BASE" "$mirror" >"$DIR/debootstrap.log" 2>&1 || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  touch "$BASE/.debootstrap-done"
  echo "clean-root-check: minimal root made in $(( $(date +%s) - t0 ))s" >&2
fi
if [ -d "$R" ]; then
  # A root left by an earlier run: nothing of it may still be mounted before it is removed.
  if grep -q " $R" /proc/self/mountinfo; then echo "clean-root-check: $R still has mounts" >&2; exit 1; fi
  rm -rf "$R"
fi
cp -a "$BASE" "$R"
rm -f "$R/.debootstrap-done"

# Node.js and npm as this machine has them (the NodeSource build the tests run with).
cp -a /usr/bin/node "$R/usr/bin/node"
mkdir -p "$R/usr/lib/node_modules"
cp -a /usr/lib/node_modules/npm "$R/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/bin/npx"
mkdir -p "$R/src" "$R/usr/local/go" "$R/root/.cache/go-build" "$R/root/go/pkg/mod"
git -C "$ROOT" archive HEAD | tar -x -C "$R/src"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# apt's sources as a machine of this kind has them (the main, updates and security suites), not
# debootstrap's one main line: configuration, not a package, and the image build reads it to
# know where bookworm-security comes from.
if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
  rm -f "$R/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/"
fi
[ -s /etc/apt/sources.list ] && cp /etc/apt/sources.list "$R/etc/apt/sources.list"

log="$DIR/test.log"
echo "clean-root-check: running npm ci && npm test in the root; log in $log" >&2
GO_CACHE="${CLEAN_ROOT_GO_CACHE:-1}" HOST_GOCACHE="$(go env GOCACHE)" HOST_GOMODCACHE="$(go env GOMODCACHE)" \
  unshare -m --propagation private bash -s "$R" >"$log" 2>&1 <<'INNER' || true
set -eu
R="$1"
# The root must be a mount of its own, or / is missing from the chroot's mountinfo.
mount --rbind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount --bind /usr/local/go "$R/usr/local/go" && mount -o remount,bind,ro "$R/usr/local/go"
# The registries' TLS roots as this machine trusts them (npm and the Go module proxy need them).
mkdir -p "$R/etc/ssl/certs" "$R/usr/local/share/ca-certificates"
mount --bind /etc/ssl/certs "$R/etc/ssl/certs"
mount --bind /usr/local/share/ca-certificates "$R/usr/local/share/ca-certificates"
if [ "$GO_CACHE" = 1 ]; then
  mount --bind "$HOST_GOCACHE" "$R/root/.cache/go-build"
  mount --bind "$HOST_GOMODCACHE" "$R/root/go/pkg/mod"
fi
exec chroot "$R" /usr/bin/env -i HOME=/root CI=true TERM=dumb \
  PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  SSL_CERT_DIR=/etc/ssl/certs TEST_PHASES="tap sanity" \
  bash -c 'cd /src && npm ci --no-audit --no-fund && npm test'
INNER
tail -1 "$log"
echo "clean-root-check: done in $(( $(date +%s) - t0 ))s" >&2
grep -qE '^[0-9]+ passed, 0 failed' <(tail -1 "$log")
