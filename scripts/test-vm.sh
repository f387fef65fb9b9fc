#!/usr/bin/env bash
# npm run test:vm: the kernel-bound suites (test/vm/*.vm.ts) in a QEMU guest running a stock
# Debian kernel, because this machine's kernel has no project quotas and withholds
# CAP_SYS_RESOURCE. Per kernel series (TSCSI_VM_KERNELS, default "6.1 6.12": bookworm's kernel
# and its 6.12 build): fetch and unpack the kernel, build the initramfs (both cached under
# .tools/vm), make fresh scratch disks, boot, run the plan's suites (the reboot suite spans a
# real guest reset), and count the TAP.
# The last line is "N passed, N failed, N skipped", as test-all.sh reads it.
set -u
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
KERNELS="${TSCSI_VM_KERNELS:-6.1 6.12}"
# Which suites run on which boot; a second boot means the first ends in a reboot. The nfs suites run last,
# so that a mount it leaves hanging cannot cost the other suites their results.
BOOT1="${TSCSI_VM_BOOT1:-smoke quota growth reboot-before}"
BOOT2="${TSCSI_VM_BOOT2-reboot-after sanity crash nfs nfs-volumes sanity-nfs}"
MEM="${TSCSI_VM_MEM:-3072}"
passed=0 failed=0 skipped=0
fail_setup() { echo "not ok - $*"; echo "$passed passed, $((failed + 1)) failed, $skipped skipped"; exit 1; }

# Called by name, so test/unit-setup.test.ts sees each program and checks its package is listed.
qemu-system-x86_64 --version >/dev/null 2>&1 || fail_setup "qemu-system-x86_64 is missing (Debian package qemu-system-x86)"
depmod --version >/dev/null 2>&1 || fail_setup "depmod is missing (Debian package kmod)"
/bin/busybox true 2>/dev/null || fail_setup "/bin/busybox is missing (Debian package busybox-static)"
mkfs.xfs -V >/dev/null 2>&1 || fail_setup "mkfs.xfs is missing (Debian package xfsprogs)"
ensure_built || fail_setup "the build failed"
# The csc-style client the nfs suite walks seed 003 with (a no-op once built).
bash scripts/client-tools.sh >/dev/null || fail_setup "scripts/client-tools.sh could not build the CSI clients"
npx tsc -p scripts/vm/tsconfig.json || fail_setup "the guest suites do not compile"

# KVM where it works. On this kind of machine /dev/kvm exists but a KVM guest dies ("failed to
# set MSR 0x10a") or hangs, so a probe boot of the kernel decides, not the device's presence:
# KVM counts as working when the kernel got as far as looking for a root filesystem.
kvm_works() {
  [ -w /dev/kvm ] || return 1
  timeout 60 qemu-system-x86_64 -accel kvm -cpu host -m 256 -nographic -no-reboot \
    -kernel "$1" -append "console=ttyS0 panic=-1" </dev/null 2>&1 | grep -q 'Unable to mount root fs\|Kernel panic'
}

for series in $KERNELS; do
  kdir="$(bash scripts/vm/kernel.sh "$series")" || { echo "not ok - kernel $series could not be fetched"; failed=$((failed + 1)); continue; }
  release="$(basename "$kdir")"
  accel=(-accel tcg -cpu max)
  if kvm_works "$kdir/boot/vmlinuz-$release"; then accel=(-accel kvm -cpu host); fi
  initrd="$(bash scripts/vm/initramfs.sh "$kdir")" || { echo "not ok - no initramfs for $release"; failed=$((failed + 1)); continue; }
  run="$TOOLS/vm/run-$release"
  rm -rf "$run" && mkdir -p "$run/out"
  # Sparse scratch disks, formatted here (no emulation cost): xfs and ext4 with the project
  # feature for the quota suites, a plain ext4 for images, growth and the reboot, and an xfs
  # for the guest's /tmp (csi-sanity's data root).
  truncate -s 2G "$run/xfs.img" "$run/ext4.img" "$run/plain.img" "$run/tmp.img"
  mkfs.xfs -q -f "$run/xfs.img" && mkfs.ext4 -q -F -O project,quota "$run/ext4.img" && mkfs.ext4 -q -F "$run/plain.img" \
    && mkfs.xfs -q -f "$run/tmp.img" \
    || fail_setup "mkfs of the scratch disks failed"
  cat > "$run/out/plan" <<PLAN
PROJECT=$ROOT
TOOLS_REAL=$(realpath "$TOOLS")
BOOT1="$BOOT1"
BOOT2="$BOOT2"
TSCSI_VM_CRASH_KILLS="${TSCSI_VM_CRASH_KILLS:-6}"
CRASH_SEED="${CRASH_SEED:-20260701}"
PLAN
  echo "== vm: $release (${accel[*]}), suites: $BOOT1${BOOT2:+ | reboot | $BOOT2}"
  started=$(date +%s)
  # No -no-reboot: the reboot suite's `reboot -f` is a real reset of this same machine.
  timeout "${TSCSI_VM_TIMEOUT:-3600}" qemu-system-x86_64 "${accel[@]}" -smp 2 -m "$MEM" -nographic \
    -kernel "$kdir/boot/vmlinuz-$release" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on \
    -virtfs local,path="$run/out",mount_tag=out,security_model=none \
    -drive file="$run/xfs.img",if=virtio,format=raw,cache=unsafe \
    -drive file="$run/ext4.img",if=virtio,format=raw,cache=unsafe \
    -drive file="$run/plain.img",if=virtio,format=raw,cache=unsafe \
    -drive file="$run/tmp.img",if=virtio,format=raw,cache=unsafe \
    </dev/null 2>&1 | tee "$run/console.log" | grep --line-buffered -E '^(vm|vm-init):'
  echo "== vm: $release ran $(( $(date +%s) - started )) s, $(cat "$run/out/boots" 2>/dev/null || echo 0) boot(s), uname -r in the guest: $(cat "$run/out/uname" 2>/dev/null || echo '?')"
  for boot in 1 2; do
    var="BOOT$boot"
    [ -n "${!var}" ] || continue
    f="$run/out/boot$boot.tap"
    summary="$(grep -E '^# \{ total: ' "$f" 2>/dev/null | tail -1)"
    if [ -z "$summary" ]; then
      echo "not ok - boot $boot (${!var}) on $release: no TAP summary (see $run/console.log)"
      failed=$((failed + 1)); continue
    fi
    # Each suite is one top-level test named after the kernel it ran on; failures show nested.
    grep -E '^(ok|not ok) |^ *not ok |# SKIP|# TODO' "$f"
    tp="$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")"
    tf="$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")"
    ts="$(sed -nE 's/.*skip: ([0-9]+).*/\1/p' <<<"$summary")"
    tt="$(sed -nE 's/.*todo: ([0-9]+).*/\1/p' <<<"$summary")"
    echo "boot $boot on $release: ${tp:-0} passed, ${tf:-0} failed, $(( ${ts:-0} + ${tt:-0} )) skipped"
    # What scripts/test-all.sh may stop skipping on a host without CAP_SYS_RESOURCE.
    if grep -qE '^ +ok [0-9]+ - ext4 images: node-expand after node-publish' "$f"; then
      echo "vm-proved: ext4-online-expansion on $release"
    fi
    passed=$((passed + ${tp:-0})); failed=$((failed + ${tf:-0})); skipped=$((skipped + ${ts:-0} + ${tt:-0}))
  done
  # The disks are sparse but large once written; a run keeps only its logs and TAP.
  [ "${TSCSI_VM_KEEP:-0}" = 1 ] || rm -f "$run"/*.img
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
