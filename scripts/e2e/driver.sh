#!/usr/bin/env bash
# tscsi and the kubernetes-csi sidecars as host processes against the e2e cluster, with the flags of
# deploy/kubernetes/{controller,node}.yaml (socket paths adapted to the host, no container image can
# be built here). Each one authenticates as its manifest's ServiceAccount (a TokenRequest token), so
# the RBAC in deploy/kubernetes is what is exercised; only snapshot-controller, which is cluster
# infrastructure and not part of tscsi, runs as the admin.
# Usage: driver.sh setup RUN               objects, data root, controller side, node side (built-in registration)
#        driver.sh node-start RUN [builtin|registrar]
#        driver.sh node-stop RUN [KILL]    stops the node plugin (and registrar), SIGTERM unless KILL
# Deviation from the manifests: --capacity-ownerref-level=-1, because the provisioner is not a pod
# and so has no Deployment to own its CSIStorageCapacity objects.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.tools/bin"
source "$HERE/proc.sh"
source "$HERE/certs.sh"
RUN="$2"
source "$RUN/env"
export KUBECONFIG
K=("$BIN/kubectl" --kubeconfig "$KUBECONFIG")
DRIVER=local.tscsi.dev
NODE_SOCK="$KUBELET_DIR/plugins/$DRIVER/csi.sock"
CTRL_SOCK="$RUN/controller/csi.sock"
DATA="$RUN/data"
SIDECAR_NS=tscsi

apply_objects() {
  local d="$ROOT/deploy/kubernetes" crd
  "${K[@]}" apply -f "$d/namespace.yaml" -f "$d/crds/" -f "$d/rbac-controller.yaml" -f "$d/rbac-node.yaml" \
    -f "$d/csidriver.yaml" -f "$d/storageclass.yaml" >/dev/null
  # The snapshot CRDs ship in external-snapshotter's client module, read from the module cache.
  crd="$(cd "$ROOT/scripts/e2e-tools/snapshotter" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd"
  "${K[@]}" apply -k "$crd" >/dev/null
  "${K[@]}" wait --for condition=established --timeout=60s crd --all >/dev/null
  "${K[@]}" apply -f "$d/snapshot/" -f "$ROOT/e2e/manifests/storageclasses.yaml" >/dev/null
}

sa_kubeconfig() { # NAME: RUN/NAME.kubeconfig with a token of ServiceAccount tscsi/NAME
  local token
  token="$("${K[@]}" create token "$1" -n tscsi --duration=6h)"
  kubeconfig "$RUN/$1.kubeconfig" "$API_SERVER" "$RUN/certs/ca.crt" "$token"
}

# The node plugin's data root: a sparse 4 GiB xfs image, so capacity is the same on every machine
# and a claim can be made that does not fit; xfs also gives reflink snapshots.
make_data_root() {
  mkdir -p "$DATA"
  truncate -s 4G "$RUN/data.img"
  mkfs.xfs -q -m reflink=1 "$RUN/data.img"
  mount -o loop "$RUN/data.img" "$DATA"
}

controller_start() {
  local ctl="$RUN/tscsi-controller.kubeconfig" p1 p2
  read -r p1 p2 < <(free_ports 2)
  echo "CONTROLLER_HEALTH=127.0.0.1:$p1" >>"$RUN/env"
  mkdir -p "$RUN/controller"
  start tscsi-controller "$RUN" node "$ROOT/dist/controller/main.js" --endpoint="unix://$CTRL_SOCK" \
    --store=kubernetes --kubeconfig="$ctl" --state-dir="$RUN/state" --log-level=info
  wait_until 30 "controller socket" test -S "$CTRL_SOCK"
  start tscsi-metrics-controller "$RUN" node "$ROOT/dist/metrics/main.js" --csi-address="$CTRL_SOCK" \
    --http-endpoint="127.0.0.1:$p1" --probe-timeout=3s
  export NAMESPACE=$SIDECAR_NS
  start csi-provisioner "$RUN" "$BIN/csi-provisioner" --kubeconfig="$ctl" --csi-address="$CTRL_SOCK" \
    --feature-gates=Topology=true --strict-topology --immediate-topology=false --enable-capacity \
    --capacity-ownerref-level=-1 --extra-create-metadata --leader-election \
    --leader-election-namespace=$SIDECAR_NS --timeout=60s
  start csi-resizer "$RUN" "$BIN/csi-resizer" --kubeconfig="$ctl" --csi-address="$CTRL_SOCK" \
    --leader-election --leader-election-namespace=$SIDECAR_NS --timeout=120s
  start csi-snapshotter "$RUN" "$BIN/csi-snapshotter" --kubeconfig="$ctl" --csi-address="$CTRL_SOCK" \
    --leader-election --leader-election-namespace=$SIDECAR_NS --timeout=120s --feature-gates=CSIVolumeGroupSnapshot=true
  start snapshot-controller "$RUN" "$BIN/snapshot-controller" --kubeconfig="$KUBECONFIG" \
    --leader-election=false --feature-gates=CSIVolumeGroupSnapshot=true
}

node_start() {
  local mode="${1:-builtin}" reg="$KUBELET_DIR/plugins_registry" p1
  mkdir -p "$reg" "$(dirname "$NODE_SOCK")"
  if [ "$mode" = registrar ] && ! [ -x "$BIN/csi-node-driver-registrar" ]; then
    echo "driver: no csi-node-driver-registrar in $BIN (the Go module proxy refuses it; see scripts/e2e/tools.sh)" >&2
    return 1
  fi
  local args=(--endpoint="unix://$NODE_SOCK" --nodeid="$NODE_NAME" --store=kubernetes
    --kubeconfig="$RUN/tscsi-node.kubeconfig" --data-root="$DATA" --state-dir="$RUN/state"
    --co-path-prefix="$KUBELET_DIR" --log-level=info)
  [ "$mode" = builtin ] && args+=(--registration-dir="$reg" --kubelet-registration-path="$NODE_SOCK")
  start tscsi-node "$RUN" node "$ROOT/dist/node/main.js" "${args[@]}"
  wait_until 30 "node plugin socket" test -S "$NODE_SOCK"
  if [ "$mode" = registrar ]; then
    start csi-node-driver-registrar "$RUN" "$BIN/csi-node-driver-registrar" --csi-address="$NODE_SOCK" \
      --kubelet-registration-path="$NODE_SOCK" --plugin-registration-path="$reg"
  fi
  if ! [ -f "$RUN/pids/tscsi-metrics-node" ]; then
    read -r p1 < <(free_ports 1)
    echo "NODE_HEALTH=127.0.0.1:$p1" >>"$RUN/env"
    start tscsi-metrics-node "$RUN" node "$ROOT/dist/metrics/main.js" --csi-address="$NODE_SOCK" \
      --http-endpoint="127.0.0.1:$p1" --probe-timeout=3s
  fi
  echo "$mode" >"$RUN/node-mode"
}

node_stop() {
  local sig="${1:-TERM}"
  stop csi-node-driver-registrar "$RUN"
  stop tscsi-node "$RUN" "$sig"
}

case "$1" in
  setup)
    apply_objects
    sa_kubeconfig tscsi-controller
    sa_kubeconfig tscsi-node
    make_data_root
    controller_start
    node_start builtin
    ;;
  node-start) node_start "${3:-builtin}" ;;
  node-stop) node_stop "${3:-TERM}" ;;
  *) echo "usage: $0 setup|node-start|node-stop RUN ..." >&2; exit 2 ;;
esac
