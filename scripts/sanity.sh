#!/usr/bin/env bash
# Runs csi-sanity v5.4.0 against a freshly started controller and node plugin on split unix
# sockets, with the local store, in a temporary folder. Arguments before `--` go to the
# controller (e.g. --enable-attach), arguments after it to csi-sanity (e.g.
# --csi.testvolumeaccesstype block). Prints csi-sanity's output and, last,
# "SANITY passed=N failed=M skipped=K" (K: csi-sanity's pending and skipped specs).
set -u
source "$(dirname "$0")/lib.sh"
ensure_csi_sanity
ctl_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do ctl_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
sanity_args=("$@")
work="$(mktemp -d /tmp/tscsi-sanity.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
node "$ROOT/dist/controller/main.js" --endpoint "unix://$work/controller.sock" --state-dir "$work/state" --log-level warn "${ctl_args[@]}" >"$work/controller.log" 2>&1 &
pids+=($!)
node "$ROOT/dist/node/main.js" --endpoint "unix://$work/node.sock" --state-dir "$work/state" --data-root "$work/data" --nodeid sanity-node --max-volumes-per-node 64 --co-path-prefix "$work" --log-level warn >"$work/node.log" 2>&1 &
pids+=($!)
wait_for_socket "$work/controller.sock" && wait_for_socket "$work/node.sock" || { cat "$work"/*.log; echo "SANITY passed=0 failed=1 skipped=0"; exit 1; }
csi-sanity \
  --csi.endpoint "unix://$work/node.sock" \
  --csi.controllerendpoint "unix://$work/controller.sock" \
  --csi.mountdir "$work/mnt" --csi.stagingdir "$work/staging" \
  --csi.testvolumesize 67108864 \
  --csi.testnodevolumeattachlimit \
  --ginkgo.no-color --ginkgo.timeout 15m "${sanity_args[@]}" 2>&1 | tee "$work/sanity.log"
summary="$(grep -E '^(SUCCESS|FAIL)! -- ' "$work/sanity.log" | tail -1)"
passed="$(sed -nE 's/.* ([0-9]+) Passed.*/\1/p' <<<"$summary")"
failed="$(sed -nE 's/.*\| ([0-9]+) Failed.*/\1/p' <<<"$summary")"
pending="$(sed -nE 's/.*\| ([0-9]+) Pending.*/\1/p' <<<"$summary")"
skipped="$(sed -nE 's/.*\| ([0-9]+) Skipped.*/\1/p' <<<"$summary")"
if [ -z "$passed" ] || [ -z "$failed" ]; then
  echo "csi-sanity did not report a summary; driver logs follow" >&2
  cat "$work"/*.log >&2
  passed=0; failed=1
fi
# Anything left mounted under the work folder is a leak the driver should have cleaned up.
leaks="$(grep -c " $work" /proc/self/mountinfo || true)"
loops="$(grep -l "$work" /sys/block/loop*/loop/backing_file 2>/dev/null | wc -l)"
if [ "$loops" != "0" ]; then echo "LEAK: $loops loop devices backed by files under $work" >&2; failed=$((failed + 1)); fi
if [ "$leaks" != "0" ]; then echo "LEAK: $leaks mounts left under $work" >&2; failed=$((failed + 1)); grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l; fi
echo "SANITY passed=$passed failed=$failed skipped=$(( ${pending:-0} + ${skipped:-0} ))"
