#!/usr/bin/env bash
# tscsi installed into the e2e cluster as users install it: its own images (scripts/image.sh,
# imported into the cluster's containerd with ctr, no registry) and `helm install` of
# deploy/helm/tscsi. The controller Deployment with its sidecars and the node DaemonSet run as pods;
# no tscsi or kubernetes-csi sidecar runs on the host. snapshot-controller, cluster infrastructure
# that is not part of tscsi (the chart does not ship it), stays a host process running as the admin.
# Usage: driver.sh setup RUN             images, snapshot CRDs, data root, snapshot-controller, install
#        driver.sh install RUN TAG       helm install (or upgrade to) image tag TAG, waits until Ready
#        driver.sh uninstall RUN         helm uninstall, waits until tscsi's pods are gone
#        driver.sh node-pid RUN          host pid of the tscsi-node container's process
#        driver.sh teardown RUN          uninstall if installed (before the cluster goes down)
# RUN/env gains IMAGE_TAGS (the two tags built, comma-separated: installed, and the one upgrades go to) and
# RELEASE_NS. The values each install uses are in RUN/values.yaml.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.tools/bin"
source "$HERE/proc.sh"
RUN="$2"
source "$RUN/env"
export KUBECONFIG
K=("$BIN/kubectl" --kubeconfig "$KUBECONFIG")
CTR=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
NS=tscsi
DATA="$RUN/data"
# Helm's caches and settings stay in the run, not in root's home.
export HELM_CACHE_HOME="$RUN/helm/cache" HELM_CONFIG_HOME="$RUN/helm/config" HELM_DATA_HOME="$RUN/helm/data"
HELM=("$BIN/helm" --kubeconfig "$KUBECONFIG" --namespace "$NS")
# The two tags of the tscsi image: the install, and the tag `helm upgrade` moves to. Same tree,
# distinct image ids, so the DaemonSet really rolls.
TAGS=(e2e-a e2e-b)

apply_objects() {
  local crd
  # The snapshot CRDs ship in external-snapshotter's client module, read from the module cache.
  # They go first: the chart renders its snapshot classes only when the cluster serves that API.
  crd="$(cd "$ROOT/scripts/e2e-tools/snapshotter" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd"
  "${K[@]}" apply -k "$crd" >/dev/null
  "${K[@]}" wait --for condition=established --timeout=60s crd --all >/dev/null
  "${K[@]}" apply -f "$ROOT/e2e/manifests/storageclasses.yaml" >/dev/null
}

# images: builds (or reuses) the tscsi image under both tags and the sidecar images, imports them
# into the run's containerd, and writes RUN/images (one "REF" a line).
images() {
  local t ref file
  : >"$RUN/images"
  for t in "${TAGS[@]}"; do
    read -r ref file < <(bash "$ROOT/scripts/image.sh" "$t" | tail -1)
    "${CTR[@]}" images import "$file" >/dev/null
    echo "$ref" >>"$RUN/images"
  done
  while read -r ref file; do
    "${CTR[@]}" images import "$file" >/dev/null
    echo "$ref" >>"$RUN/images"
  done < <(bash "$ROOT/scripts/image.sh" sidecars)
}

# sidecar NAME: "repository: R, tag: T" of the imported image of NAME.
sidecar() {
  local ref
  ref="$(grep -m1 "^tscsi.local/$1:" "$RUN/images")" || { echo "driver: no $1 image was built" >&2; return 1; }
  echo "repository: ${ref%:*}, tag: ${ref##*:}"
}

# values TAG: the chart values of this cluster. Everything else is the chart's default, as a user
# gets it: two controller replicas, the default StorageClasses, the snapshot classes.
values() {
  cat >"$RUN/values.yaml" <<EOF
image: { repository: tscsi.local/tscsi, tag: $1, pullPolicy: Never }
kubeletDir: $KUBELET_DIR
dataRoot: $DATA
provisioner: { image: { $(sidecar csi-provisioner) } }
resizer: { image: { $(sidecar csi-resizer) } }
snapshotter: { image: { $(sidecar csi-snapshotter) } }
EOF
}

# The node plugin's data root: a sparse 4 GiB xfs image, so capacity is the same on every machine
# and a claim can be made that does not fit; xfs also gives reflink snapshots. It is shared, as
# kubelet requires of a Bidirectional hostPath mount's source.
make_data_root() {
  mkdir -p "$DATA"
  truncate -s 4G "$RUN/data.img"
  mkfs.xfs -q -m reflink=1 "$RUN/data.img"
  mount -o loop "$RUN/data.img" "$DATA"
  mount --make-shared "$DATA"
  mountpoint -d "$DATA" >"$RUN/data-dev" # loop devices on it are found by this (proc.sh)
}

ready() {
  "${K[@]}" rollout status -n "$NS" daemonset/tscsi-node --timeout=10s >/dev/null 2>&1 &&
    "${K[@]}" rollout status -n "$NS" deployment/tscsi-controller --timeout=10s >/dev/null 2>&1 &&
    [ -z "$("${K[@]}" get pods -n "$NS" -o jsonpath='{range .items[*]}{.metadata.deletionTimestamp}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' | grep -v '^True$')" ]
}

# install TAG: helm install, or helm upgrade when the release exists; returns once every pod of
# the release is Ready (the rollout done, nothing terminating).
install() {
  local verb=install
  values "$1"
  "${HELM[@]}" status tscsi >/dev/null 2>&1 && verb=upgrade
  "${HELM[@]}" "$verb" tscsi "$ROOT/deploy/helm/tscsi" --create-namespace -f "$RUN/values.yaml" >"$RUN/logs/helm-$verb.log" 2>&1 ||
    { cat "$RUN/logs/helm-$verb.log" >&2; return 1; }
  wait_until 300 "tscsi's pods Ready after helm $verb" ready || { "${K[@]}" get pods -n "$NS" -o wide >&2; return 1; }
  echo "RELEASE_NS=$NS" >>"$RUN/env"
}

uninstall() {
  "${HELM[@]}" uninstall tscsi --wait --timeout 120s >"$RUN/logs/helm-uninstall.log" 2>&1 || { cat "$RUN/logs/helm-uninstall.log" >&2; return 1; }
  wait_until 120 "tscsi's pods gone" no_pods
}

no_pods() { [ -z "$("${K[@]}" get pods -n "$NS" -o name 2>/dev/null)" ]; }

# node_pid: the host pid of the tscsi-node container's process, from containerd's task list.
node_pid() {
  local id
  id="$("${K[@]}" get pods -n "$NS" -l app.kubernetes.io/component=node \
    -o jsonpath='{.items[0].status.containerStatuses[?(@.name=="tscsi-node")].containerID}')"
  id="${id#containerd://}"
  [ -n "$id" ] || { echo "driver: no running tscsi-node container" >&2; return 1; }
  "${CTR[@]}" tasks ls | awk -v id="$id" '$1 == id && $3 == "RUNNING" { print $2; found = 1 } END { exit !found }'
}

case "$1" in
  setup)
    make_data_root
    images
    apply_objects
    echo "IMAGE_TAGS=${TAGS[0]},${TAGS[1]}" >>"$RUN/env"
    start snapshot-controller "$RUN" "$BIN/snapshot-controller" --kubeconfig="$KUBECONFIG" \
      --leader-election=false --feature-gates=CSIVolumeGroupSnapshot=true
    install "${TAGS[0]}"
    ;;
  install) install "$3" ;;
  uninstall) uninstall ;;
  node-pid) node_pid ;;
  teardown) if "${HELM[@]}" status tscsi >/dev/null 2>&1; then uninstall; fi ;;
  *) echo "usage: $0 setup|install|uninstall|node-pid|teardown RUN ..." >&2; exit 2 ;;
esac
