# Start and stop functions of each test-bed service; sourced after lib.sh.
# Every start is idempotent: a service already running is left alone.
# The real node's functions (and the pod network's) are in node.sh.

KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
ADMIN_TOKEN_FILE=$PKI_DIR/admin.token

# --- Mosquitto --------------------------------------------------------------------------

start_mosquitto() {
  is_running mosquitto mosquitto && return 0
  port_open "$MQTT_PORT" && die "port $MQTT_PORT is taken by another program; set MKB_MQTT_PORT"
  mkdir -p "$STATE_DIR/mosquitto"
  # The delivery promise needs a broker that queues instead of dropping: no queue limit small
  # enough to drop a burst, and persistence so restart tests keep sessions and queues.
  # Started as root, Mosquitto would switch to the 'mosquitto' user and could not write its
  # persistence file here; keep the user that runs the test bed.
  # A second listener on the pod network's gateway when it is there: pods of the real node.
  local pod_listener=""
  pod_network_up && pod_listener="listener $MQTT_PORT $POD_GATEWAY"
  cat >"$STATE_DIR/mosquitto/mosquitto.conf" <<CONF
user $(id -un)
listener $MQTT_PORT 127.0.0.1
$pod_listener
allow_anonymous true
persistence true
persistence_location $STATE_DIR/mosquitto/
autosave_interval 30
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 1000
message_size_limit 0
log_dest stdout
log_type error
log_type warning
log_type notice
log_timestamp_format %Y-%m-%dT%H:%M:%S
CONF
  start_process mosquitto mosquitto -c "$STATE_DIR/mosquitto/mosquitto.conf"
  wait_for mosquitto 20 port_open "$MQTT_PORT"
}

stop_mosquitto() { stop_process mosquitto mosquitto; }

# --- Kafka (single KRaft node) -------------------------------------------------------------

kafka_java() {
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$STATE_DIR/kafka/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" "$@"
}

# Kafka's logging: warnings, and the broker's own INFO lines, to stdout (its log file).
kafka_log4j_config() {
  cat <<CONF
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.server.name = org.apache.kafka.server
logger.server.level = INFO
CONF
}

# The SASL user's password: random, made once per state directory, kept beside Kafka's data.
KAFKA_SASL_USER=bridge
kafka_sasl_password() { random_secret "$STATE_DIR/kafka/sasl-password"; }

# SCRAM credentials live in Kafka's metadata, so they are added once per data directory
# (and again when the password changed).
add_scram_users() {
  local marker=$STATE_DIR/kafka/data/.scram-users password
  password=$(kafka_sasl_password)
  [ "$(cat "$marker" 2>/dev/null)" = "$KAFKA_SASL_USER:$password" ] && return 0
  local mechanism
  # One mechanism per request: Kafka refuses two changes of one user's credentials in one.
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    kafka_java kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
      --entity-type users --entity-name "$KAFKA_SASL_USER" --add-config "$mechanism=[password=$password]" \
      >>"$LOG_DIR/kafka.log" 2>&1 || die "adding Kafka's $mechanism user failed; see $LOG_DIR/kafka.log"
  done
  printf '%s' "$KAFKA_SASL_USER:$password" >"$marker"
}

start_kafka() {
  if is_running kafka kafka.Kafka; then
    add_scram_users
    return 0
  fi
  local port
  for port in "$KAFKA_PORT" "$KAFKA_SSL_PORT" "$KAFKA_SASL_PORT" "$KAFKA_SCRAM512_PORT"; do
    port_open "$port" && die "port $port is taken by another program; see MKB_KAFKA_*PORT in tests/testbed/lib.sh"
  done
  local dir=$STATE_DIR/kafka
  mkdir -p "$dir"
  make_tls_material
  # A plaintext listener on the pod network's gateway when it is there, advertising that
  # address: pods of the real node cannot use 127.0.0.1.
  local pods_listener="" pods_advertised="" pods_protocol=""
  if pod_network_up; then
    pods_listener=",PODS://$POD_GATEWAY:$KAFKA_POD_PORT"
    pods_advertised=",PODS://$POD_GATEWAY:$KAFKA_POD_PORT"
    pods_protocol=",PODS:PLAINTEXT"
  fi
  kafka_log4j_config >"$dir/log4j2.properties"
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT,SCRAM512://127.0.0.1:$KAFKA_SCRAM512_PORT,PROXIED://127.0.0.1:$KAFKA_PROXIED_PORT$pods_listener
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SSL://127.0.0.1:$KAFKA_SSL_PORT,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT,SCRAM512://127.0.0.1:$KAFKA_SCRAM512_PORT,PROXIED://127.0.0.1:$KAFKA_PROXY_PORT$pods_advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,SCRAM512:SASL_SSL,PROXIED:PLAINTEXT$pods_protocol
# The secured listeners use the test bed's CA and server certificate (PEM, no keystore).
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/kafka-server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.crt
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$(kafka_sasl_password)";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.scram512.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram512.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
# An authorizer that allows whatever no ACL mentions: tests deny single topics to see how
# clients react to authorisation failures, without affecting anything else.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.segment.bytes=67108864
log.retention.hours=24
CONF
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    # The tool's log4j start-up line goes to stdout too; the id is its last line.
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka.log" | tail -n 1)
    [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka-storage random-uuid gave '$cluster_id', not a cluster id"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      --feature eligible.leader.replicas.version=0 >>"$LOG_DIR/kafka.log" 2>&1 \
      || die "formatting Kafka's storage failed; see $LOG_DIR/kafka.log"
    touch "$dir/elr-disabled"
  fi
  start_process kafka java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
  wait_for kafka 90 kafka_ready
  # Eligible leader replicas (KIP-966, on by default since Kafka 4.1) protect nothing with one
  # broker, and with them a restart of the broker once left a partition taking records while
  # its high watermark stayed at 0 (LEO 97, HW 0 until the next restart): acks=all producers
  # and every consumer stalled. Without them the broker is the classic single-replica leader.
  # Storage formatted before this setting is switched over once.
  if [ ! -f "$dir/elr-disabled" ]; then
    kafka_java org.apache.kafka.tools.FeatureCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      disable --feature eligible.leader.replicas.version >>"$LOG_DIR/kafka.log" 2>&1 \
      || die "disabling eligible leader replicas failed; see $LOG_DIR/kafka.log"
    touch "$dir/elr-disabled"
  fi
  add_scram_users
}

kafka_ready() { kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 5 2>/dev/null | grep -q "1 brokers"; }

stop_kafka() { stop_process kafka kafka.Kafka 30; }

# --- Kubernetes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK ------

make_pki() {
  [ -f "$PKI_DIR/apiserver.crt" ] && [ -f "$PKI_DIR/kubelet-client.crt" ] && return 0
  mkdir -p "$PKI_DIR"
  (
    cd "$PKI_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=testbed-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    signed_cert apiserver /CN=kube-apiserver \
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' 3650
    # The API server's client certificate towards kubelets (logs, exec).
    signed_cert kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client "$CLIENT_EXT" 3650
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >admin.token
    printf '%s,admin,admin,system:masters\n' "$(cat admin.token)" >tokens.csv
  )
  cat >"$KUBECONFIG_FILE" <<CONF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI_DIR/ca.crt
users:
- name: admin
  user:
    token: $(cat "$ADMIN_TOKEN_FILE")
contexts:
- name: testbed
  context: {cluster: testbed, user: admin, namespace: default}
current-context: testbed
CONF
}

start_etcd() {
  is_running etcd "bin/etcd" && return 0
  start_process etcd "$BIN_DIR/etcd" --name testbed --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --quota-backend-bytes 2147483648
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

apiserver_ready() {
  curl -sf --cacert "$PKI_DIR/ca.crt" -H "Authorization: Bearer $(cat "$ADMIN_TOKEN_FILE")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
}

# With the real node's pod network, pods reach the API server through the Service
# `kubernetes` (10.96.0.1:443), whose endpoint is the advertised address: the pod network's
# gateway. One --bind-address serves both that and 127.0.0.1 only as 0.0.0.0; every request
# is authenticated (client certificate or token), as on any cluster's API server.
start_apiserver() {
  # Host processes cannot dial its Service range (addresses.sh); pods' traffic to it is
  # rewritten by kube-proxy before routing (service-network.sh).
  unreachable_route "$SERVICE_CIDR"
  is_running kube-apiserver "bin/kube-apiserver" && return 0
  local bind=127.0.0.1 advertise=127.0.0.1
  if pod_network_up; then
    bind=0.0.0.0
    advertise=$POD_GATEWAY
  fi
  start_process kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$bind" --advertise-address "$advertise" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
    --client-ca-file "$PKI_DIR/ca.crt" --token-auth-file "$PKI_DIR/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cert-dir "$PKI_DIR/apiserver" --profiling=false \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$PKI_DIR/kubelet-client.crt" --kubelet-client-key "$PKI_DIR/kubelet-client.key"
  wait_for kube-apiserver 120 apiserver_ready
}

# The API request rate of the controllers is raised from the default 20/s (burst 30), as
# large clusters do: at the default, the StatefulSet controller alone takes 100 s to create
# the pods of the 500 bridges `make bench` rolls out, and that, not the operator, was the
# time measured.
# Nodes are declared unresponsive after 5 minutes without a heartbeat instead of 50 s. The
# API-server restart test stops the API server (and with it KWOK's heartbeats) for about
# half a minute; KWOK beats every 20-25 s, so the gap can pass 50 s. In a CI run the next
# suite's pod then lost its Ready condition 2 s after KWOK set it, with nothing in KWOK's
# log: the node lifecycle controller marks the pods of a lost node not Ready, and KWOK makes
# a pod Ready only once, when it starts. No test relies on a node being declared lost.
start_controller_manager() {
  is_running kube-controller-manager "bin/kube-controller-manager" && return 0
  start_process kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --leader-elect=false \
    --service-account-private-key-file "$PKI_DIR/sa.key" --root-ca-file "$PKI_DIR/ca.crt" \
    --use-service-account-credentials=false --cert-dir "$PKI_DIR/controller-manager" \
    --controllers '*' --kube-api-qps 100 --kube-api-burst 200 --node-monitor-grace-period 5m
  wait_for kube-controller-manager 60 curl -sfk "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
}

start_scheduler() {
  is_running kube-scheduler "bin/kube-scheduler" && return 0
  start_process kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig "$KUBECONFIG_FILE" --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --cert-dir "$PKI_DIR/scheduler"
  wait_for kube-scheduler 60 curl -sfk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

kubectl_tb() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# Fake nodes: KWOK plays their kubelets, so pods scheduled there become Running and Ready.
# Room for 1,000 pods each: `make bench` rolls out 500 one-replica bridges at once (a real
# node's default of 110 stopped it at 219).
create_nodes() {
  local i
  for i in 0 1; do
    kubectl_tb apply --server-side --field-manager testbed -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    type: kwok
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "1000"}
  capacity: {cpu: "16", memory: 64Gi, pods: "1000"}
YAML
  done
}

nodes_ready() { [ "$(kubectl_tb get nodes -o name --no-headers 2>/dev/null | wc -l)" -ge 2 ] && kubectl_tb wait --for=condition=Ready node --all --timeout=1s; }

# KWOK's stock lifecycle stages, read from the pinned KWOK module in the Go module cache.
kwok_stage_args() {
  local stages=$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage
  [ -d "$stages" ] || (cd "$CACHE_DIR" && go mod download "sigs.k8s.io/kwok@$KWOK_VERSION")
  local f
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    printf -- '-c\n%s\n' "$stages/$f"
  done
}

start_kwok() {
  local stage_args
  mapfile -t stage_args < <(kwok_stage_args)
  # Before KWOK hands out addresses in its pod range, which nothing serves (addresses.sh).
  unreachable_route "$KWOK_POD_CIDR"
  is_running kwok "bin/kwok" || start_process kwok "$BIN_DIR/kwok" --kubeconfig "$KUBECONFIG_FILE" "${stage_args[@]}" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr "$KWOK_POD_CIDR" --node-ip 127.0.0.1 --node-port "$KWOK_PORT" \
    --server-address "127.0.0.1:$KWOK_PORT"
  create_nodes
  wait_for kwok 60 nodes_ready
}

start_kubernetes() {
  make_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
}

# The API server alone (the operator's fault tests restart it under a reconcile).
stop_apiserver() { stop_process kube-apiserver "bin/kube-apiserver"; }

stop_kubernetes() {
  stop_process kwok "bin/kwok"
  stop_process kube-scheduler "bin/kube-scheduler"
  stop_process kube-controller-manager "bin/kube-controller-manager"
  stop_process kube-apiserver "bin/kube-apiserver"
  stop_process etcd "bin/etcd"
}

# --- toxiproxy (network faults, for the reliability tests) --------------------------------

start_toxiproxy() {
  is_running toxiproxy "bin/toxiproxy-server" && return 0
  start_process toxiproxy "$BIN_DIR/toxiproxy-server" -host 127.0.0.1 -port "$TOXIPROXY_PORT"
  wait_for toxiproxy 20 port_open "$TOXIPROXY_PORT"
  # The proxies the reliability suite cuts, slows and delays (healthy when a run starts).
  local cli=("$BIN_DIR/toxiproxy-cli" --host "http://127.0.0.1:$TOXIPROXY_PORT")
  "${cli[@]}" create -l "127.0.0.1:$MQTT_PROXY_PORT" -u "127.0.0.1:$MQTT_PORT" mqtt >>"$LOG_DIR/toxiproxy.log" 2>&1 \
    && "${cli[@]}" create -l "127.0.0.1:$KAFKA_PROXY_PORT" -u "127.0.0.1:$KAFKA_PROXIED_PORT" kafka >>"$LOG_DIR/toxiproxy.log" 2>&1 \
    || die "creating the toxiproxy proxies failed; see $LOG_DIR/toxiproxy.log"
}

stop_toxiproxy() { stop_process toxiproxy "bin/toxiproxy-server"; }

# --- TLS material for the security tests --------------------------------------------------
# A test CA, a server certificate for 127.0.0.1 / localhost / tls.testbed.local (also Kafka's,
# as kafka-server.pem: key and certificate in one PEM file), a client certificate, a second CA
# nobody trusts (wrong-CA tests), and a server and a client certificate from the test CA that
# expired in 2020 (expired/). Regenerated when missing or within a day of expiring; generated
# offline with openssl.

TLS_DIR=$STATE_DIR/tls

SERVER_EXT='subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:tls.testbed.local\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
CLIENT_EXT='basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'

# <name>.key and <name>.crt in the current directory, for `subject`, with the extensions
# `ext` (printf %b escapes), valid for `days`, signed by <ca>.crt/<ca>.key (default: ./ca).
signed_cert() { # name subject ext days [ca]
  local name=$1 subject=$2 ext=$3 days=$4 ca=${5:-ca}
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%b' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

tls_cert() { signed_cert "$1" "/CN=$2" "$3" 825; } # name cn extfile-lines

# A certificate valid only in January 2020 (`openssl x509` cannot backdate; `openssl ca` can).
expired_cert() { # name cn extfile-lines
  local name=$1 cn=$2 ext=$3
  openssl req -newkey rsa:2048 -nodes -keyout "expired/$name.key" -out "expired/$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf '%b' "$ext" >"expired/$name.ext"
  : >expired/index.txt
  printf '[ca]\ndefault_ca=testbed\n[testbed]\ndatabase=expired/index.txt\nnew_certs_dir=expired\nserial=ca.srl\ndefault_md=sha256\npolicy=any\n[any]\ncommonName=supplied\n' >expired/ca.cnf
  openssl ca -batch -notext -config expired/ca.cnf -cert ca.crt -keyfile ca.key -in "expired/$name.csr" \
    -startdate 20200101000000Z -enddate 20200131000000Z -extfile "expired/$name.ext" \
    -out "expired/$name.crt" 2>/dev/null
  rm -f expired/*.csr expired/*.ext expired/ca.cnf expired/index.txt* expired/*.pem ca.srl.old
}

tls_fresh() { openssl x509 -checkend 86400 -noout -in "$TLS_DIR/$1" >/dev/null 2>&1; }

make_tls_material() {
  if tls_fresh ca.crt && tls_fresh server.crt && tls_fresh client.crt \
    && [ -f "$TLS_DIR/kafka-server.pem" ] && [ -f "$TLS_DIR/expired/client.crt" ]; then
    return 0
  fi
  rm -rf "$TLS_DIR" && mkdir -p "$TLS_DIR/other" "$TLS_DIR/expired"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/CN=testbed-tls-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    tls_cert server tls.testbed.local "$SERVER_EXT"
    cat server.key server.crt >kafka-server.pem
    tls_cert client bridge-client "$CLIENT_EXT"
    expired_cert server tls.testbed.local "$SERVER_EXT"
    expired_cert client bridge-client "$CLIENT_EXT"
    cd other
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/CN=untrusted-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  )
}

# --- the env file -----------------------------------------------------------------------

write_env() {
  cat >"$ENV_FILE.tmp" <<ENV
# Written by tests/testbed/up.sh. Source it (set -a; . $ENV_FILE) or read it from tests.
TESTBED_DIR=$STATE_DIR
TESTBED_LOGS=$LOG_DIR
TESTBED_SERVICE=$TESTBED_DIR/service.sh
TESTBED_BIN=$BIN_DIR
KUBECONFIG=$KUBECONFIG_FILE
KUBERNETES_VERSION=$KUBERNETES_VERSION
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
KAFKA_SSL_BOOTSTRAP=127.0.0.1:$KAFKA_SSL_PORT
KAFKA_SASL_BOOTSTRAP=127.0.0.1:$KAFKA_SASL_PORT
KAFKA_SCRAM512_BOOTSTRAP=127.0.0.1:$KAFKA_SCRAM512_PORT
KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
KAFKA_SASL_PASSWORD=$(kafka_sasl_password)
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_HOME=$KAFKA_HOME
KAFKA_CLUSTER_BOOTSTRAP=$(kafka_cluster_bootstrap)
HIVEMQ_URL=mqtt://127.0.0.1:$HIVEMQ_PORT
HIVEMQ_PORT=$HIVEMQ_PORT
HIVEMQ_TLS_URL=mqtts://127.0.0.1:$HIVEMQ_TLS_PORT
HIVEMQ_TLS_PORT=$HIVEMQ_TLS_PORT
HIVEMQ_VERSION=$HIVEMQ_VERSION
MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
MQTT_HOST=127.0.0.1
MQTT_PORT=$MQTT_PORT
TOXIPROXY_URL=http://127.0.0.1:$TOXIPROXY_PORT
MQTT_PROXIED_PORT=$MQTT_PROXY_PORT
KAFKA_PROXIED_BOOTSTRAP=127.0.0.1:$KAFKA_PROXY_PORT
TESTBED_TLS_DIR=$TLS_DIR
TESTBED_NETWORKS=$POD_SUBNET
TESTBED_UNSERVED_RANGES=$KWOK_POD_CIDR,$SERVICE_CIDR
ENV
  if is_running kubelet "bin/kubelet"; then
    cat >>"$ENV_FILE.tmp" <<ENV
REAL_NODE=$NODE_NAME
POD_MQTT_URL=mqtt://mosquitto.iot.svc:1883
POD_KAFKA_BOOTSTRAP=kafka-bootstrap.kafka.svc:9092
ENV
  fi
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# shellcheck source=kafka-cluster.sh
. "$TESTBED_DIR/kafka-cluster.sh"
# shellcheck source=hivemq.sh
. "$TESTBED_DIR/hivemq.sh"
# shellcheck source=node.sh
. "$TESTBED_DIR/node.sh"
# shellcheck source=addresses.sh
. "$TESTBED_DIR/addresses.sh"
# shellcheck source=service-network.sh
. "$TESTBED_DIR/service-network.sh"
