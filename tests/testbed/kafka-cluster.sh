# The three-broker Kafka cluster (issue 30): what users run in production, for the failover
# tests. Sourced by services.sh after the single broker's functions (it reuses KAFKA_HOME).
#
# Three KRaft nodes, each broker and controller in one process ("combined" mode): three JVMs
# instead of six on a two-core machine, and killing a node then takes a broker and a quorum
# voter down together, as losing a machine does. Replication factor 3 and
# min.insync.replicas=2 by default, as Strimzi's examples set them. Eligible leader replicas
# (KIP-966) stay on, as Kafka 4.x formats new clusters, so the fail-over rows test what users
# run. (The single broker has them off: there, after a restart, a partition once kept taking
# records with its high watermark stuck at 0. Not seen on the cluster.)
#
# Ports: node N's client listener on KAFKA_CLUSTER_PORT+N, its controller on
# KAFKA_CLUSTER_CONTROLLER_PORT+N, all on 127.0.0.1.

KAFKA_CLUSTER_NODES=(1 2 3)

kafka_cluster_port() { echo $((KAFKA_CLUSTER_PORT + $1)); }
kafka_cluster_controller_port() { echo $((KAFKA_CLUSTER_CONTROLLER_PORT + $1)); }

# "<prefix>127.0.0.1:<port>" for every node, comma-separated.
kafka_cluster_list() { # port-function with-node-id-prefix(true|false)
  local n out=() prefix=""
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    ! "$2" || prefix="$n@"
    out+=("${prefix}127.0.0.1:$("$1" "$n")")
  done
  (IFS=,; echo "${out[*]}")
}
kafka_cluster_bootstrap() { kafka_cluster_list kafka_cluster_port false; }
kafka_cluster_voters() { kafka_cluster_list kafka_cluster_controller_port true; }

# A node's name as the pid and log files know it.
kafka_node_name() { echo "kafka-cluster-$1"; }

kafka_node_config() { # node
  local n=$1 dir=$STATE_DIR/kafka-cluster/$1
  mkdir -p "$dir"
  kafka_log4j_config >"$dir/log4j2.properties"
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(kafka_cluster_voters)
listeners=PLAINTEXT://127.0.0.1:$(kafka_cluster_port "$n"),CONTROLLER://127.0.0.1:$(kafka_cluster_controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_cluster_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
log.retention.hours=24
# The log cleaner (it compacts __consumer_offsets) takes its dedupe buffer from the heap at
# start: 128 MiB by default, which left a restarted node with 256 MiB of heap dying of
# OutOfMemoryError while it loaded its logs.
log.cleaner.dedupe.buffer.size=16777216
# A killed node is noticed in 6 s rather than 9 (the broker's session with the controller), so
# the failover rows measure the bridge rather than the wait for the default timeout.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
CONF
}

kafka_cluster_formatted() {
  local n
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    [ -f "$STATE_DIR/kafka-cluster/$n/data/meta.properties" ] || return 1
  done
}

# All three data directories formatted with one cluster id; a partial set is formatted anew
# (never under a running node).
format_kafka_cluster() {
  kafka_cluster_formatted && return 0
  local cluster_id n
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    ! is_running "$(kafka_node_name "$n")" "kafka-cluster/$n/server.properties" \
      || die "Kafka cluster node $n runs on a data directory another node lacks; stop the cluster (service.sh stop kafka-cluster) and start it again"
  done
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-cluster.log" | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka-storage random-uuid gave '$cluster_id', not a cluster id"
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    rm -rf "$STATE_DIR/kafka-cluster/$n/data"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$STATE_DIR/kafka-cluster/$n/server.properties" \
      >>"$LOG_DIR/kafka-cluster.log" 2>&1 || die "formatting Kafka cluster node $n failed; see $LOG_DIR/kafka-cluster.log"
  done
}

start_kafka_node() { # node
  local n=$1 name
  name=$(kafka_node_name "$n")
  is_running "$name" "kafka-cluster/$n/server.properties" && return 0
  [ -f "$STATE_DIR/kafka-cluster/$n/data/meta.properties" ] || die "Kafka cluster node $n is not formatted; start the whole cluster (service.sh start kafka-cluster)"
  local port
  for port in "$(kafka_cluster_port "$n")" "$(kafka_cluster_controller_port "$n")"; do
    port_open "$port" && die "port $port is taken by another program; see MKB_KAFKA_CLUSTER_*PORT in tests/testbed/lib.sh"
  done
  kafka_node_config "$n"
  local dir=$STATE_DIR/kafka-cluster/$n
  # 384 MiB of heap at most each: about 400 MB resident each under the reliability load
  # (docs/testbed.md).
  start_process "$name" java -Xms128m -Xmx384m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
}

# Ready when every node's broker is registered and unfenced: the metadata, asked of
# `bootstrap`, lists them all.
kafka_cluster_ready() { # [bootstrap]
  kcat -b "${1:-$(kafka_cluster_bootstrap)}" -L -m 5 2>/dev/null | grep -q "${#KAFKA_CLUSTER_NODES[@]} brokers"
}

start_kafka_cluster() {
  local n
  # The configuration first: formatting reads it.
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do kafka_node_config "$n"; done
  mkdir -p "$LOG_DIR"
  format_kafka_cluster
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do start_kafka_node "$n"; done
  wait_for kafka-cluster 120 kafka_cluster_ready
}

# All three at once: stopped one after the other, the last ones wait for a controller quorum
# that has gone (a controlled shutdown needs it) until they are killed 30 s later.
stop_kafka_cluster() {
  local n pids=()
  for n in "${KAFKA_CLUSTER_NODES[@]}"; do
    stop_kafka_node "$n" &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# One node (service.sh start|stop|restart kafka-cluster/N). A started node is waited for until
# the cluster lists all three brokers again.
start_kafka_cluster_node() { # node
  start_kafka_node "$1"
  wait_for "$(kafka_node_name "$1")" 90 kafka_cluster_ready "127.0.0.1:$(kafka_cluster_port "$1")"
}

stop_kafka_node() { stop_process "$(kafka_node_name "$1")" "kafka-cluster/$1/server.properties" 30; }

# kill -9 of one node: what the failover rows do to a partition leader or the controller.
kill_kafka_node() { # node
  local name pid
  name=$(kafka_node_name "$1")
  pid=$(pid_of "$name")
  is_running "$name" "kafka-cluster/$1/server.properties" || die "Kafka cluster node $1 is not running"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PID_DIR/$name.pid"
}
