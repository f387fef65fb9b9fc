#!/usr/bin/env bash
# kernel.sh SERIES -> prints the unpacked kernel's directory (.tools/vm/kernels/<release>).
# SERIES is a Debian kernel series such as 6.1 (bookworm) or 6.12 (bookworm's backports-style
# +deb12 builds). The newest stock linux-image-<SERIES>.<n>-<abi>-amd64 apt knows is downloaded
# with `apt-get download` (never a glob: one would fetch every kernel in the archive), unpacked
# with dpkg-deb -x and given a modules.dep by `depmod -b`. An unpacked tree is reused, so only the
# first run pays for the download.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
series="${1:?usage: kernel.sh SERIES (e.g. 6.1)}"
VM="$TOOLS/vm"
mkdir -p "$VM/kernels"

# An already unpacked tree of this series wins: the test runs on what it ran on last time,
# offline, without asking apt. TSCSI_VM_REFRESH=1 looks for a newer build.
# Stock images only: 6.1.0-57-amd64 (bookworm's ABI-numbered builds), 6.12.117+deb12-amd64 (its
# 6.12 builds); not -rt, -cloud, -dbg or -unsigned. The same pattern picks unpacked trees, so
# series 6.1 never picks a 6.12 tree.
STOCK="^${series//./\\.}(\\.[0-9]+)*(-[0-9]+)?(\\+deb[0-9]+)?-amd64\$"
have="$(ls "$VM/kernels" 2>/dev/null | grep -E "$STOCK" | sort -V | tail -1 || true)"
[ -z "$have" ] || have="$VM/kernels/$have"
if [ -n "$have" ] && [ -f "$have/.complete" ] && [ "${TSCSI_VM_REFRESH:-0}" != 1 ]; then
  echo "$have"; exit 0
fi

# Exact package names only: the signed stock image of the series, newest ABI first.
pkgs() { apt-cache search --names-only "^linux-image-${STOCK#^}" | awk '{print $1}' | sort -V; }
pkg="$(pkgs | tail -1)"
if [ -z "$pkg" ]; then
  apt-get update -qq >&2
  pkg="$(pkgs | tail -1)"
fi
[ -n "$pkg" ] || { echo "kernel.sh: apt knows no linux-image-$series.*-amd64" >&2; exit 1; }
release="${pkg#linux-image-}"
dest="$VM/kernels/$release"
if [ -f "$dest/.complete" ]; then echo "$dest"; exit 0; fi

echo "vm: downloading $pkg" >&2
dl="$(mktemp -d "$VM/dl.XXXXXX")"
trap 'rm -rf "$dl"' EXIT
# _apt cannot write into a root-owned temp folder; apt then downloads as root and says so.
(cd "$dl" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' >&2 || true)
deb="$(ls "$dl"/*.deb)"
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
dpkg-deb -x "$deb" "$dest.tmp"
depmod -b "$dest.tmp" "$release"
touch "$dest.tmp/.complete"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "$dest"
