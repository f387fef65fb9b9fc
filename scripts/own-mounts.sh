#!/usr/bin/env bash
# own-mounts.sh KEEP CMD [ARG...]: run first thing inside `unshare -m`; drops this new mount
# namespace's copies of the host's mounts, keeping /, /proc, /sys, /dev (and what is below them)
# and the mounts KEEP lies on, then runs CMD.
#
# Why: a new mount namespace starts with a copy of every mount, and a copy keeps its filesystem
# alive. The host's / is private here, so an unmount on the host does not reach the copy: a test
# that mounted an image on a loop device while debootstrap (scripts/image/base.sh) or a chroot
# (test/helpers/image.ts) started found the superblock alive and the loop device still attached
# after unmounting it (the crash harness reported exactly that, naming the debootstrap process).
set -u
keep="$(realpath -m "$1")"
shift
awk '{ print $5 }' /proc/self/mountinfo | sort -r | while read -r mp; do
  case "$mp" in
    / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;;
  esac
  case "$keep/" in "$mp"/*) continue ;; esac
  umount -l "$mp" 2>/dev/null || true
done
exec "$@"
