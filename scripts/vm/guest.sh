#!/usr/bin/env bash
# Runs in the guest, chrooted into a root built from the host's userland (scripts/vm/init.sh).
# Each boot runs the suites the plan names for it; results go to /out as TAP, one file a boot.
# The scratch disks (/dev/vda xfs, /dev/vdb ext4 with the project feature, /dev/vdc plain ext4, in -drive order)
# were made on the host; they persist across the reboot.
set -u
cd "$PROJECT"
boot=$(( $(cat /out/boots 2>/dev/null || echo 0) + 1 ))
echo "$boot" > /out/boots
uname -r > /out/uname
echo "vm: boot $boot on $(uname -r), CapEff $(awk '/^CapEff/ {print $2}' /proc/self/status)"
mkdir -p /scratch/xfs /scratch/ext4 /scratch/plain
mount -o prjquota /dev/vda /scratch/xfs || echo "vm: cannot mount /dev/vda (xfs, prjquota)"
mount -o prjquota /dev/vdb /scratch/ext4 || echo "vm: cannot mount /dev/vdb (ext4, prjquota)"
mount /dev/vdc /scratch/plain || echo "vm: cannot mount /dev/vdc (ext4)"

# The plan says which suites run on which boot: BOOT1="quota growth", BOOT2="...".
source /out/plan
this="BOOT$boot" following="BOOT$((boot + 1))"
suites="${!this:-}"
next=poweroff
[ -n "${!following:-}" ] && next=reboot
for s in $suites; do
  echo "vm: suite $s"
  start=$(date +%s)
  node "dist/vm/test/vm/$s.vm.js" 2>&1 | tee "/out/$s.tap"
  echo "vm: suite $s took $(( $(date +%s) - start )) s"
done
echo "$next" > /out/next
