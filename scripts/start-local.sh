#!/usr/bin/env bash
# Runs tscsi on this machine without Kubernetes: the controller and the node plugin, each on its
# own unix socket, sharing the local store, and a metrics/health sidecar for each. Everything lives under .local/ (or $TSCSI_LOCAL).
# Stop with Ctrl-C; the processes drain in-flight calls and exit.
set -u
source "$(dirname "$0")/lib.sh"
# The filesystem tools the node plugin runs (mkfs.*, resize2fs, xfs_growfs, btrfs), as in the image.
bash "$ROOT/scripts/setup.sh" --image || exit 1
ensure_built
base="${TSCSI_LOCAL:-$ROOT/.local}"
mkdir -p "$base"
pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait; exit 0; }
trap stop INT TERM
node "$ROOT/dist/controller/main.js" --endpoint "unix://$base/controller.sock" --state-dir "$base/state" "$@" &
pids+=($!)
# Without kubelet, staging and target paths live in /tmp (as in the README's examples) or here.
node "$ROOT/dist/node/main.js" --endpoint "unix://$base/node.sock" --state-dir "$base/state" --data-root "$base/data" --co-path-prefix /tmp --co-path-prefix "$base" &
pids+=($!)
wait_for_socket "$base/controller.sock" && wait_for_socket "$base/node.sock" || stop
# One metrics/health sidecar per process, as in a cluster (loopback only).
node "$ROOT/dist/sidecar/main.js" --csi-address "$base/controller.sock" --http-endpoint 127.0.0.1:9808 &
pids+=($!)
node "$ROOT/dist/sidecar/main.js" --csi-address "$base/node.sock" --http-endpoint 127.0.0.1:9809 &
pids+=($!)
cat <<MSG

tscsi is running with the local store:
  controller (Identity + Controller): unix://$base/controller.sock
  node plugin (Identity + Node):      unix://$base/node.sock
  volume data:                        $base/data/volumes
  store:                              $base/state/store
  sidecars (/healthz, /metrics):      http://127.0.0.1:9808 (controller), http://127.0.0.1:9809 (node)

Try it (in another shell):
  npx tscsi-call unix://$base/controller.sock Controller.CreateVolume '{"name":"pvc-1","volume_capabilities":[{"mount":{},"access_mode":{"mode":"SINGLE_NODE_WRITER"}}]}'
Press Ctrl-C to stop.
MSG
wait
