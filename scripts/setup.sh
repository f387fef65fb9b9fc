#!/usr/bin/env bash
# The one set-up step: installs every Debian package that tscsi's code, tests, e2e and benchmarks
# run a program from (the table below), before anything uses them. `npm test` runs it
# first; `npm start` runs it with --image (only what the node plugin itself runs).
#   bash scripts/setup.sh            every package in the list
#   bash scripts/setup.sh --image    only the `image` scope
#   bash scripts/setup.sh --list [--image]   print the package names and exit
#   bash scripts/setup.sh --table    print the table (PACKAGE SCOPE PROGRAMS...) and exit
# Prints what it installs and what was already there. Idempotent: a second run installs nothing
# and takes well under a second. Needs root only when something is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The Debian (bookworm) packages tscsi runs programs from, beyond what a minimal Debian root
# (debootstrap --variant=minbase: every package of priority "required") already has. One a line:
#
#   PACKAGE  SCOPE  PROGRAMS...
#
# SCOPE `image`: the node plugin runs these in production (the Dockerfile installs the same
# three). SCOPE `test`: only the tests, the real-cluster e2e and the benchmarks
# run these. scripts/setup.sh installs both scopes before any test; `npm start` installs `image`.
# PROGRAMS are checked: test/unit-setup.test.ts finds every program that the code and the
# scripts start, fails when no package here (and no required one) provides it, and checks that
# each program named here is in its package.
PACKAGES='
e2fsprogs                   image  mkfs.ext4 resize2fs e2fsck
xfsprogs                    image  mkfs.xfs xfs_growfs
btrfs-progs                 image  mkfs.btrfs btrfs
prometheus                  test   prometheus promtool
etcd-server                 test   etcd
containerd                  test   containerd ctr
runc                        test   runc
containernetworking-plugins test   /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback
iptables                    test   iptables
busybox-static              test   busybox
openssl                     test   openssl
curl                        test   curl
strace                      test   strace
file                        test   file
procps                      test   ps
iproute2                    test   ip
git                         test   git
debootstrap                 test   debootstrap
ca-certificates             test
python3-minimal             test   python3
python3-venv                test
qemu-system-x86             test   qemu-system-x86_64
kmod                        test   depmod
nfs-kernel-server           test   rpc.nfsd exportfs rpc.mountd
'
scope=all list_only=0
for a in "$@"; do
  case "$a" in
    --image) scope=image ;;
    --list) list_only=1 ;;
    --table) printf '%s\n' "$PACKAGES" | awk 'NF'; exit 0 ;;
    *) echo "setup: unknown argument $a (use --image, --list, --table)" >&2; exit 2 ;;
  esac
done

# The package names of the chosen scope, in the list's order.
mapfile -t want < <(awk -v s="$scope" 'NF && (s == "all" || $2 == s) { print $1 }' <<<"$PACKAGES")
if [ "$list_only" = 1 ]; then printf '%s\n' "${want[@]}"; exit 0; fi

log() { echo "setup: $*" >&2; }
missing=() present=()
for p in "${want[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then present+=("$p"); else missing+=("$p"); fi
done
log "already installed (${#present[@]}): ${present[*]:-none}"
if [ "${#missing[@]}" = 0 ]; then log "nothing to install"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  log "missing ${missing[*]}; installing them needs root: apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi
log "installing (${#missing[@]}): ${missing[*]}"

# apt's lists on a new machine may be absent or older than the archive: refresh once when any
# wanted package has no install candidate.
for p in "${missing[@]}"; do
  if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then apt-get update -q >&2; break; fi
done

# Several of these packages (containerd, etcd-server, prometheus, nfs-kernel-server and the
# rpcbind it pulls in) start a system daemon from their maintainer scripts unless policy-rc.d
# forbids it (exit 101). The tests start their own private
# instances, so forbid it for the length of this install; an existing policy is left as it is.
policy=/usr/sbin/policy-rc.d made=0
if ! [ -e "$policy" ]; then
  printf '#!/bin/sh\n# put here by tscsi scripts/setup.sh for one apt-get install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made=1
fi
cleanup() { if [ "$made" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
t0="$(date +%s)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
log "installed ${missing[*]} in $(( $(date +%s) - t0 ))s"
