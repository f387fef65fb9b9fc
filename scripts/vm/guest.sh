#!/usr/bin/env bash
# Runs in the guest, chrooted into a root built from the host's userland (scripts/vm/init.sh).
# Each boot runs the suites the plan names for it; results go to /out as TAP, one file a boot.
# The scratch disks (/dev/vda xfs, /dev/vdb ext4 with the project feature, /dev/vdc plain ext4, /dev/vdd xfs
# for /tmp, in -drive order)
# were made on the host; they persist across the reboot.
set -u
cd "$PROJECT"
boot=$(( $(cat /out/boots 2>/dev/null || echo 0) + 1 ))
echo "$boot" > /out/boots
uname -r > /out/uname
echo
echo "vm: boot $boot on $(uname -r), CapEff $(awk '/^CapEff/ {print $2}' /proc/self/status)"
mkdir -p /scratch/xfs /scratch/ext4 /scratch/plain
mount -o prjquota /dev/vda /scratch/xfs || echo "vm: cannot mount /dev/vda (xfs, prjquota)"
mount -o prjquota /dev/vdb /scratch/ext4 || echo "vm: cannot mount /dev/vdb (ext4, prjquota)"
mount /dev/vdc /scratch/plain || echo "vm: cannot mount /dev/vdc (ext4)"
# /tmp is its own xfs, mounted prjquota by the init (scripts/vm/init.sh), alone at its mount point:
# scripts/sanity.sh keeps its data root under /tmp, and its driver numbers project ids from the
# same start as the quota suite's, so it gets a filesystem of its own.

# The plan says which suites run on which boot: BOOT1="quota growth", BOOT2="...".
source /out/plan
export TSCSI_VM_CRASH_KILLS CRASH_SEED
this="BOOT$boot" following="BOOT$((boot + 1))"
suites="${!this:-}"
next=poweroff
[ -n "${!following:-}" ] && next=reboot
# One Node process for the boot's suites (test/vm/main.ts): each start costs ~30 s under TCG.
if [ -n "$suites" ]; then
  echo "vm: boot $boot suites: $suites"
  start=$(date +%s)
  node dist/vm/test/vm/main.js $suites 2>&1 | tee "/out/boot$boot.tap"
  echo "vm: boot $boot suites took $(( $(date +%s) - start )) s"
fi
echo "$next" > /out/next
