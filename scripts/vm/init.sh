#!/bin/busybox sh
# /init of the test guest (runs on every boot, including the one after the reboot suite's reset).
# It loads the modules, mounts the host's root read-only over virtio-9p and the run's result
# folder read-write, builds a root on tmpfs from the host's /usr and /etc (so mount points can
# be made and / is a real mount in /proc/self/mountinfo), and runs the project's
# scripts/vm/guest.sh in it with the host's bash and Node. guest.sh leaves "reboot" or
# "poweroff" in /out/next.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# busybox named explicitly: these are its applets in the initramfs, not the host's programs.
while read -r m; do /bin/busybox insmod "/mods/$m" || echo "vm-init: insmod $m failed"; done < /mods/order

fail() { echo "vm-init: $*"; echo "vm-init: FAILED"; /bin/busybox poweroff -f; }
o9p=trans=virtio,version=9p2000.L,msize=262144
# cache=loose: the host's root does not change during a run, and uncached 9p lookups are what
# make Node's start-up slow.
mount -t 9p -o ro,cache=loose,$o9p host /host || fail "cannot mount the host's root"
mount -t 9p -o $o9p out /out || fail "cannot mount the result share"
. /out/plan || fail "no /out/plan"

R=/newroot
mount -t tmpfs -o mode=755 newroot $R
for d in usr etc opt; do
  [ -d /host/$d ] && mkdir -p $R/$d && mount --bind /host/$d $R/$d
done
# bookworm's merged /usr: /bin, /lib, ... are symlinks into it.
for l in bin sbin lib lib32 lib64 libx32; do
  if [ -L /host/$l ]; then ln -s "$(readlink /host/$l)" $R/$l
  elif [ -d /host/$l ]; then mkdir -p $R/$l && mount --bind /host/$l $R/$l; fi
done
# /tmp is the xfs scratch disk /dev/vdd, mounted prjquota (guest.sh says why), and it is mounted
# before the project is bound in: a checkout under /tmp (a fresh clone in /tmp/fresh-check) must
# stay visible on top of it, not be hidden by a /tmp mounted later.
mkdir -p $R/tmp
mount -t xfs -o prjquota /dev/vdd $R/tmp || { echo "vm-init: cannot mount /dev/vdd (xfs, prjquota) on /tmp"; mount -t tmpfs tmp $R/tmp; }
chmod 1777 $R/tmp
# The project and the tool cache its .tools link points at, read-only, at their host paths.
for p in $PROJECT $TOOLS_REAL; do
  mkdir -p $R$p && mount --bind /host$p $R$p || fail "cannot bind $p"
done
mkdir -p $R/proc $R/sys $R/dev $R/tmp $R/run $R/var/tmp $R/root $R/out $R/scratch
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/shm && mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs tmp $R/var/tmp
mount -t tmpfs run $R/run
mount --bind /out $R/out

chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 PROJECT="$PROJECT" bash "$PROJECT/scripts/vm/guest.sh"
sync
if [ "$(cat /out/next 2>/dev/null)" = reboot ]; then
  rm -f /out/next
  /bin/busybox reboot -f
fi
/bin/busybox poweroff -f
