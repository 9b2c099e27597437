# Shared settings of the test-bed scripts; sourced, not run.
set -euo pipefail

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTBED_DIR/../.." && pwd)
# shellcheck source=versions.env
. "$TESTBED_DIR/versions.env"

# Downloads and builds live outside the checkout so a fresh clone starts warm.
CACHE_DIR=${MKB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-kafka-bridge}
BIN_DIR=$CACHE_DIR/bin
# Runtime state (data dirs, logs, pids, the env file) belongs to this checkout.
STATE_DIR=${MKB_TESTBED_STATE:-$REPO_ROOT/target/testbed}

export GOMODCACHE=$CACHE_DIR/go/mod
export GOCACHE=$CACHE_DIR/go/build
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export PATH=$BIN_DIR:$PATH

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }

# A binary is current when the stamp next to it names the version it was built from.
is_current() { # name version
  [ -x "$BIN_DIR/$1" ] && [ "$(cat "$BIN_DIR/.$1.version" 2>/dev/null)" = "$2" ]
}
stamp() { # name version
  printf '%s\n' "$2" >"$BIN_DIR/.$1.version"
}

# Fixed loopback ports, away from the usual defaults so a developer's own brokers do not clash.
MQTT_PORT=${MKB_MQTT_PORT:-21883}
KAFKA_PORT=${MKB_KAFKA_PORT:-29092}
KAFKA_CONTROLLER_PORT=${MKB_KAFKA_CONTROLLER_PORT:-29093}
# Kafka's secured listeners: SSL with required client certificates; SASL_SSL with PLAIN,
# SCRAM-SHA-256 and SCRAM-SHA-512; SASL_SSL with SCRAM-SHA-512 only (wrong-mechanism tests).
KAFKA_SSL_PORT=${MKB_KAFKA_SSL_PORT:-29094}
KAFKA_SASL_PORT=${MKB_KAFKA_SASL_PORT:-29095}
KAFKA_SCRAM512_PORT=${MKB_KAFKA_SCRAM512_PORT:-29096}
ETCD_PORT=${MKB_ETCD_PORT:-22379}
ETCD_PEER_PORT=${MKB_ETCD_PEER_PORT:-22380}
APISERVER_PORT=${MKB_APISERVER_PORT:-26443}
CONTROLLER_MANAGER_PORT=${MKB_CONTROLLER_MANAGER_PORT:-20257}
SCHEDULER_PORT=${MKB_SCHEDULER_PORT:-20259}
KWOK_PORT=${MKB_KWOK_PORT:-20250}
TOXIPROXY_PORT=${MKB_TOXIPROXY_PORT:-28474}
# Through toxiproxy, for the reliability suite's network faults: Mosquitto at MQTT_PROXY_PORT,
# and Kafka at KAFKA_PROXY_PORT, where its PROXIED listener (on KAFKA_PROXIED_PORT) is
# advertised, so clients stay behind the proxy after the bootstrap.
MQTT_PROXY_PORT=${MKB_MQTT_PROXY_PORT:-21884}
KAFKA_PROXIED_PORT=${MKB_KAFKA_PROXIED_PORT:-29098}
KAFKA_PROXY_PORT=${MKB_KAFKA_PROXY_PORT:-29099}
# The three-broker cluster (kafka-cluster.sh): node N listens on the base port + N (1-3).
KAFKA_CLUSTER_PORT=${MKB_KAFKA_CLUSTER_PORT:-29110}
KAFKA_CLUSTER_CONTROLLER_PORT=${MKB_KAFKA_CLUSTER_CONTROLLER_PORT:-29120}
# HiveMQ CE (hivemq.sh), plain and TLS.
HIVEMQ_PORT=${MKB_HIVEMQ_PORT:-21885}
HIVEMQ_TLS_PORT=${MKB_HIVEMQ_TLS_PORT:-21886}

# The real node (node.sh): pods on a bridge network; the host is its gateway, where Mosquitto
# and Kafka listen too (Kafka on a port of its own: a listener per port) and the kubelet serves.
NODE_NAME=mkb-node
POD_BRIDGE=mkb0
POD_SUBNET=10.88.0.0/16
POD_GATEWAY=10.88.0.1
KAFKA_POD_PORT=${MKB_KAFKA_POD_PORT:-29097}
KUBELET_PORT=${MKB_KUBELET_PORT:-20262}
KUBELET_HEALTHZ_PORT=${MKB_KUBELET_HEALTHZ_PORT:-20263}
# The real node's Service network (service-network.sh): kube-proxy's and CoreDNS's health ports.
KUBE_PROXY_METRICS_PORT=${MKB_KUBE_PROXY_METRICS_PORT:-20264}
KUBE_PROXY_HEALTHZ_PORT=${MKB_KUBE_PROXY_HEALTHZ_PORT:-20265}
COREDNS_HEALTH_PORT=${MKB_COREDNS_HEALTH_PORT:-20266}
COREDNS_READY_PORT=${MKB_COREDNS_READY_PORT:-20267}
CLUSTER_DOMAIN=cluster.local
PAUSE_IMAGE=localhost/mkb-testbed/pause:1
PAUSE_ARCHIVE=$CACHE_DIR/images/pause.tar

PID_DIR=$STATE_DIR/pids
LOG_DIR=$STATE_DIR/logs
PKI_DIR=$STATE_DIR/pki
KUBECONFIG_FILE=$STATE_DIR/kubeconfig
ENV_FILE=$STATE_DIR/env

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }

# Running: the recorded pid is alive and still the program we started (pids get reused).
is_running() { # name program
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a program in the background in its own session, logging to $LOG_DIR/<name>.log.
start_process() { # name command...
  local name=$1
  shift
  mkdir -p "$PID_DIR" "$LOG_DIR"
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# A random secret kept in `file` (made once, readable by its owner only); prints it.
random_secret() { # file
  local file=$1
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# Waits until a command succeeds, up to a deadline; on timeout shows the service's log.
wait_for() { # name seconds command...
  local name=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$name did not become ready within ${seconds}s; last lines of $LOG_DIR/$name.log:"
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# Stops a process by pid: TERM, then KILL after a grace period.
stop_process() { # name program [grace-seconds]
  local name=$1 program=$2 grace=${3:-15} pid
  pid=$(pid_of "$name")
  if [ -n "$pid" ] && is_running "$name" "$program"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
  fi
  rm -f "$PID_DIR/$name.pid"
}
