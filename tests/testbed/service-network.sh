# The real node's Service network (sourced after node.sh and addresses.sh): kube-proxy turns
# the ClusterIPs pods dial into the addresses behind them, and CoreDNS answers the
# `*.svc.cluster.local` names, so pods find the API server as `kubernetes.default` and the
# brokers as `mosquitto.iot.svc` and `kafka-bootstrap.kafka.svc`, as in a real cluster.
#
# Both run as host processes beside the rest of the control plane (there is no image registry
# to pull them from). kube-proxy runs in iptables mode; its NodePorts open only on the pod
# network's gateway, and it leaves the host's conntrack settings alone. CoreDNS listens on the
# gateway, answers the cluster domain from the API server and NXDOMAIN for every other name: it
# forwards nothing, so no pod's lookup leaves the machine.
#
# The Services behind which the test bed's host processes serve pods are selector-less, with
# EndpointSlices naming the gateway: the cluster DNS (kube-system/kube-dns at $DNS_SERVICE_IP,
# the kubelet's clusterDNS), Mosquitto (iot/mosquitto:1883) and Kafka's pod listener
# (kafka/kafka-bootstrap:9092, which advertises the gateway address pods reach).
#
# Host processes cannot dial ClusterIPs: the Service range stays unreachable on the host
# (addresses.sh); kube-proxy rewrites pods' packets before routing, so they never see that route.

DNS_SERVICE_IP=10.96.0.10
SERVICE_NETWORK_DIR=$STATE_DIR/service-network

write_service_network_config() {
  mkdir -p "$SERVICE_NETWORK_DIR"
  cat >"$SERVICE_NETWORK_DIR/kube-proxy.yaml" <<CONF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_FILE}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_SUBNET
detectLocalMode: ClusterCIDR
nodePortAddresses: ["$POD_GATEWAY/32"]
iptables: {localhostNodePorts: false}
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
# 0: leave the host's conntrack table size and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
CONF
  cat >"$SERVICE_NETWORK_DIR/Corefile" <<CONF
$CLUSTER_DOMAIN:53 {
    bind $POD_GATEWAY
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes $CLUSTER_DOMAIN {
        kubeconfig $KUBECONFIG_FILE testbed
    }
    cache 10
}
.:53 {
    bind $POD_GATEWAY
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
CONF
}

# The Services whose endpoints are the test bed's host processes on the pod network's gateway.
apply_host_services() {
  local ns
  for ns in iot kafka; do
    kubectl_tb create namespace "$ns" --dry-run=client -o yaml | kubectl_tb apply -f - >/dev/null
  done
  host_service kube-system kube-dns "$DNS_SERVICE_IP" "dns:53:53:UDP dns-tcp:53:53:TCP"
  host_service iot mosquitto "" "mqtt:1883:$MQTT_PORT:TCP"
  host_service kafka kafka-bootstrap "" "kafka:9092:$KAFKA_POD_PORT:TCP"
}

host_service() { # namespace name cluster-ip "name:port:target:protocol ..."
  local ns=$1 name=$2 ip=$3 p svc_ports="" slice_ports=""
  for p in $4; do
    IFS=: read -r pname port target proto <<<"$p"
    svc_ports+="  - {name: $pname, port: $port, targetPort: $target, protocol: $proto}"$'\n'
    slice_ports+="  - {name: $pname, port: $target, protocol: $proto}"$'\n'
  done
  kubectl_tb apply --server-side --force-conflicts --field-manager testbed -f - >/dev/null <<YAML || die "cannot create Service $ns/$name"
apiVersion: v1
kind: Service
metadata:
  name: $name
  namespace: $ns
  labels: {app.kubernetes.io/managed-by: mkb-testbed}
spec:
  type: ClusterIP
  ${ip:+clusterIP: $ip}
  ports:
$svc_ports---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $name-host
  namespace: $ns
  labels:
    kubernetes.io/service-name: $name
    endpointslice.kubernetes.io/managed-by: mkb-testbed
addressType: IPv4
endpoints:
  - addresses: ["$POD_GATEWAY"]
    conditions: {ready: true}
ports:
$slice_ports
YAML
}

dns_ready() { curl -sf "http://127.0.0.1:$COREDNS_READY_PORT/ready"; }

start_service_network() {
  write_service_network_config
  apply_host_services
  is_running coredns "bin/coredns" ||
    start_process coredns "$BIN_DIR/coredns" -conf "$SERVICE_NETWORK_DIR/Corefile"
  wait_for coredns 60 dns_ready
  is_running kube-proxy "bin/kube-proxy" ||
    start_process kube-proxy "$BIN_DIR/kube-proxy" --config "$SERVICE_NETWORK_DIR/kube-proxy.yaml"
  wait_for kube-proxy 60 curl -sf "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
}

# kube-proxy's rules stay in the kernel after it exits; --cleanup removes them.
stop_service_network() {
  stop_process kube-proxy "bin/kube-proxy"
  if [ -x "$BIN_DIR/kube-proxy" ] && iptables -t nat -S KUBE-SERVICES >/dev/null 2>&1; then
    "$BIN_DIR/kube-proxy" --cleanup >>"$LOG_DIR/kube-proxy.log" 2>&1 ||
      log "kube-proxy --cleanup failed; see $LOG_DIR/kube-proxy.log"
  fi
  stop_process coredns "bin/coredns"
}

# The kubelet and kube-proxy add KUBE-* chains to iptables and ip6tables (the kubelet's
# canaries and KUBE-FIREWALL, hooked into INPUT and OUTPUT), which stay after they exit. When
# none was there before the node started (a marker in the state directory records that), the
# node's stop removes them all: the jumps from the built-in chains, then the chains.
KUBE_CHAINS_MARKER=$STATE_DIR/kube-iptables-ours

kube_chains_present() {
  local ipt
  for ipt in iptables ip6tables; do
    "$ipt-save" 2>/dev/null | grep -q '^:KUBE-' && return 0
  done
  return 1
}

claim_kube_chains() {
  [ -f "$KUBE_CHAINS_MARKER" ] && return 0
  if kube_chains_present; then
    log "iptables already has KUBE-* chains (another Kubernetes on this host?): the test bed will leave them alone"
  else
    mkdir -p "$STATE_DIR" && : >"$KUBE_CHAINS_MARKER"
  fi
}

remove_kube_chains() {
  [ -f "$KUBE_CHAINS_MARKER" ] || return 0
  local ipt table rule chain chains
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      # iptables-save quotes what needs it (comments), so each line is evaluated as words.
      "$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
        while read -r rule; do eval "$ipt -t $table ${rule/-A/-D}" 2>/dev/null || true; done || true
      chains=$("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p')
      for chain in $chains; do "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in $chains; do "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
  kube_chains_present && log "some KUBE-* iptables chains could not be removed; see iptables-save"
  rm -f "$KUBE_CHAINS_MARKER"
}
