#!/usr/bin/env bash
# initramfs.sh KERNEL_DIR -> prints the path of a gzip'd cpio for that kernel.
# It holds Debian's static busybox, the modules the guest needs (with their dependencies, in the
# order `modprobe --show-depends` gives) and scripts/vm/init.sh as /init. Rebuilt only when the
# init script, the module list or this script changed, so a warm run reuses it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
kdir="${1:?usage: initramfs.sh KERNEL_DIR}"
release="$(basename "$kdir")"
here="$ROOT/scripts/vm"
# virtio + 9p: the host's userland and the result share. virtio_blk: the scratch disks.
# loop, ext4, xfs, btrfs: what the driver mounts. quota_v2: ext4's project quotas (QFMT_V2);
# xfs quotas are built into xfs.ko. crc32c is what ext4/xfs checksums ask the crypto API for;
# nothing in the guest could load it on demand (no modprobe behind the kernel's request_module).
# nfsd and nfsv4 (with sunrpc, lockd, grace, auth_rpcgss, nfs, ...): the NFS suite's server and
# client, which this project's host kernel lacks; mount(2) of type nfs4 would be ENODEV without
# them, for the same reason.
MODULES="virtio_pci 9pnet_virtio 9p virtio_blk loop crc32c_generic crc32c_intel ext4 xfs btrfs quota_v2 nfsd nfsv4"
# Debian's busybox-static: the guest has no libc of its own before it reaches the host's.
busybox=/bin/busybox
stamp="$(cat "$0" "$here/init.sh" | sha256sum | cut -c1-16)"
out="$TOOLS/vm/initramfs-$release-$stamp.cpio.gz"
if [ -f "$out" ]; then echo "$out"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for d in bin dev proc sys mods host out newroot; do mkdir -p "$work/$d"; done
cp "$busybox" "$work/bin/busybox"
cp "$here/init.sh" "$work/init"
chmod 755 "$work/init"
: > "$work/mods/order"
for m in $MODULES; do
  modprobe -d "$kdir" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  name="$(basename "$ko")"
  # Debian's 6.12 ships xz-compressed modules; busybox's insmod wants them plain, and its own
  # xzcat unpacks them (no xz-utils needed).
  case "$name" in
    *.ko.xz) "$busybox" xzcat "$ko" > "$work/mods/${name%.xz}"; name="${name%.xz}" ;;
    *) cp "$ko" "$work/mods/$name" ;;
  esac
  echo "$name" >> "$work/mods/order"
done
rm -f "$TOOLS/vm/initramfs-$release-"*.cpio.gz
(cd "$work" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
