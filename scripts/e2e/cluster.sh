#!/usr/bin/env bash
# A single-node Kubernetes v1.31 on this machine, everything private to one run directory RUN:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler   127.0.0.1, free ports
#   containerd (its own root, state and socket under RUN), runc, CNI config under RUN
#   kubelet (root dir RUN/kubelet, made an rshared bind mount of itself first)
#   a pod network: the bridge tscsie2e0 (10.244.0.0/24, CNI bridge + host-local), and one DNAT rule
#   that takes the API server's service address 10.0.0.1:443 to the loopback-bound API server, the
#   one thing kube-proxy would do here, so in-cluster clients (tscsi's pods) reach it
# Usage: cluster.sh up RUN | down RUN | clean-check RUN
# `up` writes RUN/env (KUBECONFIG, NODE_NAME, paths and ports) for the other scripts. Every daemon
# runs in its own session (setsid), so a Ctrl-C reaches only e2e.sh, whose trap tears down in order.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$ROOT/.tools/bin"
source "$HERE/certs.sh"
source "$HERE/proc.sh"

# The node must be named after a host name that resolves to 127.0.0.1: the API server dials the
# kubelet by its Hostname address first, and the kubelet will not take a loopback --node-ip.
node_name() {
  local h; h="$(hostname)"
  if [ "$(getent ahostsv4 "$h" 2>/dev/null | awk 'NR==1 {print $1}')" = 127.0.0.1 ]; then echo "$h"; else echo localhost; fi
}

node_ready() {
  [ "$("$BIN/kubectl" --kubeconfig "$1/admin.kubeconfig" get node "$2" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

BRIDGE=tscsie2e0
# What the run changes in the host's network, recorded so `down` undoes exactly that.
pod_network_up() {
  local run="$1" port="$2"
  sysctl -n net.ipv4.ip_forward >"$run/ip_forward-before" # the bridge plugin sets it when isGateway
  ls /var/run/netns 2>/dev/null >"$run/netns-before" || true
  # Made here rather than by the bridge plugin so route_localnet can be set before any pod starts:
  # without it the kernel drops packets DNATed from a bridge to 127.0.0.1 as martians.
  ip link add "$BRIDGE" type bridge
  echo "-d 10.0.0.1/32 -i $BRIDGE -p tcp -m tcp --dport 443 -m comment --comment tscsi-e2e:$run -j DNAT --to-destination 127.0.0.1:$port" >"$run/dnat-rule"
  ip link set "$BRIDGE" up
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  # shellcheck disable=SC2046
  iptables -t nat -A PREROUTING $(cat "$run/dnat-rule")
}

pod_network_down() {
  local run="$1" ns
  # Nothing of the network is this run's unless pod_network_up got as far as the rule.
  [ -f "$run/dnat-rule" ] || return 0
  # shellcheck disable=SC2046
  iptables -t nat -D PREROUTING $(cat "$run/dnat-rule") 2>/dev/null
  # Network namespaces of sandboxes kubelet could not tear down (killed before it did).
  if [ -f "$run/netns-before" ]; then
    for ns in $(ls /var/run/netns 2>/dev/null); do
      case "$ns" in cni-*) grep -qx "$ns" "$run/netns-before" || ip netns delete "$ns" 2>/dev/null || true ;; esac
    done
  fi
  ip link del "$BRIDGE" 2>/dev/null || true
  [ -f "$run/ip_forward-before" ] && sysctl -qw "net.ipv4.ip_forward=$(cat "$run/ip_forward-before")"
  true
}

up() {
  local run="$1" node ports
  node="$(node_name)"
  read -r ETCD_PORT ETCD_PEER API_PORT KUBELET_PORT KUBELET_HZ < <(free_ports 5)
  local certs="$run/certs" kubelet="$run/kubelet" ctrd="$run/containerd"
  mkdir -p "$run/logs" "$run/pids" "$kubelet" "$ctrd" "$run/cni/net.d" "$run/etcd"
  # containerd puts pod cgroups under k8s.io in each hierarchy; teardown removes it unless it was here.
  ls -d /sys/fs/cgroup/*/k8s.io 2>/dev/null >"$run/cgroups-before" || true
  # One bridge name for every run: a second e2e at once on this machine would share it.
  if ip link show "$BRIDGE" >/dev/null 2>&1; then echo "cluster: $BRIDGE exists: another e2e runs on this machine, or one left it" >&2; return 1; fi
  make_certs "$certs" "$node"
  local server="https://127.0.0.1:$API_PORT"
  kubeconfig "$run/admin.kubeconfig" "$server" "$certs/ca.crt" "$certs/admin.crt" "$certs/admin.key"
  kubeconfig "$run/kcm.kubeconfig" "$server" "$certs/ca.crt" "$certs/controller-manager.crt" "$certs/controller-manager.key"
  kubeconfig "$run/scheduler.kubeconfig" "$server" "$certs/ca.crt" "$certs/scheduler.crt" "$certs/scheduler.key"
  kubeconfig "$run/kubelet.kubeconfig" "$server" "$certs/ca.crt" "$certs/kubelet-client.crt" "$certs/kubelet-client.key"
  cat >"$run/env" <<EOF
RUN=$run
NODE_NAME=$node
KUBECONFIG=$run/admin.kubeconfig
KUBELET_DIR=$kubelet
CONTAINERD_SOCK=$ctrd/containerd.sock
API_SERVER=$server
EOF

  start etcd "$run" "$BIN/etcd" --name e2e --data-dir "$run/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER"
  wait_until 60 "etcd" curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start kube-apiserver "$run" "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none --service-cluster-ip-range=10.0.0.0/24 \
    --tls-cert-file="$certs/apiserver.crt" --tls-private-key-file="$certs/apiserver.key" \
    --client-ca-file="$certs/ca.crt" --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$certs/apiserver-kubelet-client.crt" --kubelet-client-key="$certs/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$certs/sa.pub" --service-account-signing-key-file="$certs/sa.key" \
    --allow-privileged=true --profiling=false
  wait_until 120 "kube-apiserver /readyz" "$BIN/kubectl" --kubeconfig "$run/admin.kubeconfig" get --raw /readyz

  start kube-controller-manager "$run" "$BIN/kube-controller-manager" --kubeconfig="$run/kcm.kubeconfig" \
    --secure-port=0 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$certs/sa.key" --root-ca-file="$certs/ca.crt" --profiling=false \
    ${E2E_KCM_QPS:+--kube-api-qps="$E2E_KCM_QPS" --kube-api-burst="$((E2E_KCM_QPS * 2))"}
  start kube-scheduler "$run" "$BIN/kube-scheduler" --kubeconfig="$run/scheduler.kubeconfig" \
    --secure-port=0 --leader-elect=false --profiling=false

  # containerd, private to this run: its own root, state, socket and CNI config, so nothing is
  # shared with a containerd the host may run, and teardown can remove all of it.
  # restrict_oom_score_adj: runc cannot raise oom_score_adj without CAP_SYS_RESOURCE.
  cat >"$ctrd/config.toml" <<EOF
version = 2
root = "$ctrd/root"
state = "$ctrd/state"
[grpc]
  address = "$ctrd/containerd.sock"
[ttrpc]
  address = "$ctrd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ctrd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "tscsi-e2e.local/pause:1"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$run/cni/net.d"
EOF
  # tscsi's pods run on the pod network as in any cluster (the scenarios' busybox pods use the
  # host's). isGateway makes the bridge their default route, so the DNAT below sees their packets.
  cat >"$run/cni/net.d/10-e2e.conflist" <<EOF
{"cniVersion":"0.4.0","name":"e2e","plugins":[{"type":"bridge","bridge":"$BRIDGE","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24","gateway":"10.244.0.1"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$run/cni/ipam"}},{"type":"loopback"}]}
EOF
  pod_network_up "$run" "$API_PORT"
  start containerd "$run" /usr/bin/containerd --config "$ctrd/config.toml"
  wait_until 30 "containerd" ctr --address "$ctrd/containerd.sock" version
  for img in pause busybox; do
    ctr --address "$ctrd/containerd.sock" -n k8s.io images import "$ROOT/.tools/e2e/images/$img.tar" >/dev/null
  done

  # Mounts the node plugin makes under the kubelet dir must propagate into containers.
  mount --bind "$kubelet" "$kubelet"
  mount --make-rshared "$kubelet"
  cat >"$run/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HZ
tlsCertFile: $certs/kubelet.crt
tlsPrivateKeyFile: $certs/kubelet.key
authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: $certs/ca.crt } }
authorization: { mode: AlwaysAllow }
containerRuntimeEndpoint: unix://$ctrd/containerd.sock
cgroupDriver: cgroupfs
# No per-QoS cgroup tree: nothing of kubelet's is left in /sys/fs/cgroup after the run.
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# A shared build machine's disk may be fuller than kubelet's defaults like; never evict or GC here.
evictionHard: { memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: ""
syncFrequency: 10s
fileCheckFrequency: 10s
volumeStatsAggPeriod: 10s
EOF
  start kubelet "$run" "$BIN/kubelet" --config="$run/kubelet-config.yaml" --kubeconfig="$run/kubelet.kubeconfig" \
    --root-dir="$kubelet" --hostname-override="$node" --cert-dir="$run/kubelet-pki" --v=2
  wait_until 120 "node $node Ready" node_ready "$run" "$node"
  wait_until 60 "default service account" "$BIN/kubectl" --kubeconfig "$run/admin.kubeconfig" get serviceaccount default -n default
}

# Best effort and bounded at every step: teardown runs after failures too.
down() {
  local run="$1" ctrd="$1/containerd" f
  stop_all "$run" kubelet kube-scheduler kube-controller-manager
  # The driver and its sidecars (whatever driver.sh started and is still running).
  for f in "$run"/pids/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in containerd | kube-apiserver | etcd) ;; *) stop "$(basename "$f")" "$run" ;; esac
  done
  if [ -S "$ctrd/containerd.sock" ]; then
    local c=(ctr --address "$ctrd/containerd.sock" -n k8s.io)
    for id in $(timeout 20 "${c[@]}" tasks ls -q 2>/dev/null); do timeout 10 "${c[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 1
    for id in $(timeout 20 "${c[@]}" tasks ls -q 2>/dev/null); do timeout 10 "${c[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $(timeout 20 "${c[@]}" containers ls -q 2>/dev/null); do timeout 10 "${c[@]}" containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop_all "$run" containerd kube-apiserver etcd
  pod_network_down "$run"
  # Shims outlive containerd by design; ours name our socket on their command line.
  kill_matching "$run" containerd-shim
  # Volume mounts sit on loop devices backed by files in the data root, itself a loop mount: a
  # second pass frees what the first could only detach lazily.
  unmount_under "$run"
  detach_loops_under "$run"
  unmount_under "$run"
  detach_loops_under "$run"
  local cg
  for cg in /sys/fs/cgroup/*/k8s.io; do
    [ -d "$cg" ] && ! grep -qx "$cg" "$run/cgroups-before" 2>/dev/null || continue
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# Prints what this run left on the machine, one line each; prints nothing when the machine is clean.
clean_check() {
  local run="$1" f p
  for f in "$run"/pids/*; do
    [ -f "$f" ] || continue
    p="$(cat "$f")"
    [ -d "/proc/$p" ] && [ "$(cat "/proc/$p/stat" 2>/dev/null | awk '{print $3}')" != Z ] && echo "process $(basename "$f") (pid $p) still running"
  done
  for p in $(pids_matching "$run"); do echo "process $p still running: $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-120)"; done
  awk -v r="$run" '$5 == r || index($5, r "/") == 1 { print "mount still there: " $5 }' /proc/self/mountinfo
  local holders
  for f in /sys/block/loop*/loop/backing_file; do
    [ -f "$f" ] && grep -q "^$run/" "$f" || continue
    # A process that made its own mount namespace while the data root was mounted (other test
    # runs on a shared machine do) keeps a copy of that mount; with autoclear set, the device goes
    # when that process exits, and nothing of ours still holds it. Anything else is a leak.
    holders="$(grep -l " $run" /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3 | tr '\n' ' ')"
    if [ "$(cat "$(dirname "$f")/autoclear")" = 1 ] && [ -n "$holders" ] && [ -z "$(pids_matching "$run")" ]; then
      echo "note: loop device $(basename "$(dirname "$(dirname "$f")")") ($(cat "$f")) is released (autoclear) but other processes' mount namespaces still hold a copy (pids $holders); it goes when they exit" >&2
      continue
    fi
    echo "loop device $(basename "$(dirname "$(dirname "$f")")") still backed by $(cat "$f")"
  done
  for f in $(loops_on_data_root "$run"); do echo "loop device $f still backed by a file of the data root ($(cat "$run/data-dev"))"; done
  for f in /sys/fs/cgroup/*/k8s.io; do
    [ -d "$f" ] && grep -qx "$f" "$run/cgroups-before" 2>/dev/null || { [ -d "$f" ] && echo "cgroup $f still there"; }
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "network interface $BRIDGE still there"
  iptables -t nat -S PREROUTING 2>/dev/null | grep -F "tscsi-e2e:$run" | sed 's/^/iptables rule still there: /'
  if [ -f "$run/netns-before" ]; then
    for f in $(ls /var/run/netns 2>/dev/null); do
      case "$f" in cni-*) grep -qx "$f" "$run/netns-before" || echo "network namespace $f still there" ;; esac
    done
    [ "$(sysctl -n net.ipv4.ip_forward)" = "$(cat "$run/ip_forward-before")" ] || echo "net.ipv4.ip_forward still changed"
  fi
  true
}

case "${1:-}" in
  up) up "$2" ;;
  down) down "$2" ;;
  clean-check) clean_check "$2" ;;
  *) echo "usage: $0 up|down|clean-check RUN" >&2; exit 2 ;;
esac
