# The real node: a kubelet of the API server's version with containerd and runc, so pods really
# run (sourced after lib.sh and services.sh). Needs root: containerd, the kubelet and the pod
# network change the host.
#
# What it adds to the host, and stop_node removes again: the bridge $POD_BRIDGE with
# $POD_GATEWAY (Mosquitto, Kafka, CoreDNS and the API server also listen there, for pods);
# kube-proxy's and the kubelet's iptables chains (service-network.sh); containerd's and the
# kubelet's state under $NODE_DIR, with their mounts and the pods' network namespaces; the
# kubepods cgroups. A start after a crash clears what the crashed run left first.
#
# This host has cgroup v1 (hybrid), which the kubelet refuses by default since 1.35:
# failCgroupV1 is false, with the cgroupfs driver (there is no systemd). Lowering an OOM score
# needs CAP_SYS_RESOURCE, which this host's root lacks: containerd's restrict_oom_score_adj
# keeps every container at or above containerd's own score instead of failing the pod.

NODE_DIR=$STATE_DIR/node
CONTAINERD_SOCKET=$NODE_DIR/containerd/containerd.sock

ctr_tb() { "$BIN_DIR/ctr" --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

pod_network_up() { ip -4 addr show dev "$POD_BRIDGE" 2>/dev/null | grep -q "inet $POD_GATEWAY/"; }

start_pod_network() {
  [ "$(id -u)" -eq 0 ] || die "the real node needs root (containerd, the kubelet and the pod network change the host); without it: tests/testbed/up.sh mosquitto kafka kafka-cluster hivemq toxiproxy kubernetes"
  pod_egress_rule
  pod_network_up && return 0
  ip link show "$POD_BRIDGE" >/dev/null 2>&1 || ip link add "$POD_BRIDGE" type bridge
  ip addr add "$POD_GATEWAY/${POD_SUBNET#*/}" dev "$POD_BRIDGE"
  ip link set "$POD_BRIDGE" up
}

stop_pod_network() {
  ip link show "$POD_BRIDGE" >/dev/null 2>&1 || return 0
  ip link del "$POD_BRIDGE"
}

# The kubelet's client certificate (its node identity for the Node authorizer).
make_node_pki() {
  [ -f "$NODE_DIR/pki/kubelet.crt" ] && return 0
  mkdir -p "$NODE_DIR/pki"
  (
    cd "$NODE_DIR/pki"
    signed_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$CLIENT_EXT" 825 "$PKI_DIR/ca"
  )
}

write_node_config() {
  mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni" "$NODE_DIR/kubelet"
  cat >"$NODE_DIR/containerd/config.toml" <<CONF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCKET"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$BIN_DIR/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$NODE_DIR/cni"
CONF
  cat >"$NODE_DIR/cni/10-mkb-testbed.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "mkb-testbed",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$NODE_DIR/cni-ipam"}},
    {"type": "loopback"}
  ]
}
CONF
  # Only holders of a certificate from the test bed's CA (the API server, for logs and exec)
  # may call the kubelet; whoever does may do anything there.
  cat >"$NODE_DIR/kubelet/config.yaml" <<CONF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $POD_GATEWAY
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
# Pods resolve names with the cluster DNS (service-network.sh); no pod gets the host's
# resolv.conf, whose name server is off the machine.
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
registerWithTaints:
- {key: mqttkafka.io/real-node, value: "true", effect: NoSchedule}
# The host's disk is shared with everything else: no evictions or image collection because of it.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
CONF
  cat >"$NODE_DIR/kubelet/kubeconfig" <<CONF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: $PKI_DIR/ca.crt}
users:
- name: $NODE_NAME
  user: {client-certificate: $NODE_DIR/pki/kubelet.crt, client-key: $NODE_DIR/pki/kubelet.key}
contexts:
- name: node
  context: {cluster: testbed, user: $NODE_NAME}
current-context: node
CONF
}

# Loads the pause image and whatever `make images` wrote into containerd's k8s.io namespace.
import_node_images() {
  is_running containerd "bin/containerd --config" || return 0
  local archive
  for archive in "$PAUSE_ARCHIVE" "$REPO_ROOT"/target/images/*.tar; do
    [ -f "$archive" ] || continue
    ctr_tb images import "$archive" >/dev/null 2>>"$LOG_DIR/containerd.log" ||
      die "importing $archive into the node's containerd failed; see $LOG_DIR/containerd.log"
  done
}

node_ready() {
  [ "$(kubectl_tb get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_node() {
  start_pod_network
  if ! is_running containerd "bin/containerd --config"; then
    clear_node_leftovers
    make_node_pki
    write_node_config
    start_process containerd "$BIN_DIR/containerd" --config "$NODE_DIR/containerd/config.toml"
    wait_for containerd 30 ctr_tb version
  fi
  import_node_images
  if ! is_running kubelet "bin/kubelet"; then
    claim_kube_chains
    start_process kubelet "$BIN_DIR/kubelet" --config "$NODE_DIR/kubelet/config.yaml" \
      --kubeconfig "$NODE_DIR/kubelet/kubeconfig" --root-dir "$NODE_DIR/kubelet/root" \
      --hostname-override "$NODE_NAME" --node-ip "$POD_GATEWAY" --node-labels mqttkafka.io/node=real
  fi
  wait_for kubelet 90 node_ready
  start_service_network
}

# Kills the pods' processes, unmounts what containerd and the kubelet mounted, and removes the
# node's state and cgroups. Safe when nothing is left.
clear_node_leftovers() {
  local cg pids mounts
  for cg in /sys/fs/cgroup/*/kubepods; do
    [ -d "$cg" ] || continue
    pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  done
  pkill -KILL -f "containerd-shim-runc-v2 .*$NODE_DIR" 2>/dev/null || true
  # Deepest first, so nested mounts go before their parents.
  mounts=$(awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r)
  local m
  for m in $mounts; do umount -l "$m" 2>/dev/null || true; done
  if awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {found=1} END {exit !found}' /proc/self/mounts; then
    die "mounts under $NODE_DIR remain after unmounting; see /proc/self/mounts"
  fi
  rm -rf "$NODE_DIR/containerd/root" "$NODE_DIR/containerd/state" "$NODE_DIR/kubelet/root" "$NODE_DIR/cni-ipam"
  for cg in /sys/fs/cgroup/*/kubepods; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

stop_node() {
  stop_service_network
  stop_process kubelet "bin/kubelet"
  # Its pods go with it: the API server forgets the node, and the pod garbage collector the
  # pods bound to it. The next start registers it afresh.
  if apiserver_ready >/dev/null 2>&1; then
    kubectl_tb delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null
  fi
  stop_process containerd "bin/containerd --config"
  clear_node_leftovers
  remove_kube_chains
}
