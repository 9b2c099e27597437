#!/usr/bin/env bash
# make demo: the smart-lock bridge the way a platform team runs it. Brings the test bed up
# (Mosquitto, Kafka, Kubernetes on 127.0.0.1), installs the Helm chart, runs the operator under
# the chart's ServiceAccount, applies examples/smart-locks.yaml (pointed at the test bed's
# brokers), and shows device states reaching Kafka and commands reaching the devices, with
# counts. Exits 0 only when both flows delivered every message.
#
# The demo's bridge is scheduled on one of the test bed's simulated (KWOK) nodes: the pod is
# reported Running, but no container starts there. So the operator runs here as a local
# process with the ServiceAccount's token, and pod smart-locks-0 runs here as a local
# bridge-runtime with exactly the ConfigMap and POD_NAME the operator rendered for it. (The test
# bed's real node, docs/testbed.md, runs bridge pods from the images; the end-to-end test
# operator/tests/real_node.rs does that.)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[1;31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }
NS=smart-locks-demo
RELEASE=mkb
ACCOUNT=$RELEASE-mqtt-kafka-bridge-operator
mkdir -p target/demo
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

say "Starting the test bed: Mosquitto, Kafka and Kubernetes on 127.0.0.1 (first run builds them)"
tests/testbed/up.sh
set -a; . target/testbed/env; set +a
export PATH="$TESTBED_BIN:$PATH"

say "Building mkb-operator and bridge-runtime"
cargo build --quiet --locked -p mkb-operator -p bridge-runtime
bin=${CARGO_TARGET_DIR:-target}/debug

say "helm install $RELEASE charts/mqtt-kafka-bridge-operator (watching namespace $NS)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm upgrade --install "$RELEASE" charts/mqtt-kafka-bridge-operator -n "$NS" \
  --set "watchNamespaces={$NS}" --wait --timeout 120s >/dev/null
kubectl -n "$NS" get deployment,serviceaccount,role,rolebinding -l app.kubernetes.io/instance="$RELEASE"

say "Running the operator as ServiceAccount $ACCOUNT (a TokenRequest token, not admin)"
server=$(kubectl config view --raw --minify -o 'jsonpath={.clusters[0].cluster.server}')
ca="certificate-authority-data: \"$(kubectl config view --raw --minify -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}')\""
[ "$ca" != 'certificate-authority-data: ""' ] ||
  ca="certificate-authority: \"$(kubectl config view --raw --minify -o 'jsonpath={.clusters[0].cluster.certificate-authority}')\""
token=$(kubectl create token "$ACCOUNT" -n "$NS" --duration=1h)
cat >target/demo/operator.kubeconfig <<EOF
apiVersion: v1
kind: Config
clusters: [{name: testbed, cluster: {server: "$server", $ca}}]
users: [{name: operator, user: {token: "$token"}}]
contexts: [{name: operator, context: {cluster: testbed, user: operator, namespace: "$NS"}}]
current-context: operator
EOF
KUBECONFIG=target/demo/operator.kubeconfig "$bin/mkb-operator" --namespace "$NS" \
  --leader-elect --leader-election-namespace "$NS" --leader-election-lease "$ACCOUNT" \
  --listen 127.0.0.1:18080 --resync-seconds 30 >target/demo/operator.log 2>&1 &
pids+=($!)

say "kubectl apply -f examples/smart-locks.yaml (brokers: $MQTT_URL, $KAFKA_BOOTSTRAP)"
sed -e "s|mqtt://mosquitto.iot.svc:1883|$MQTT_URL|" -e "s|kafka-bootstrap.kafka.svc:9092|$KAFKA_BOOTSTRAP|" \
  examples/smart-locks.yaml >target/demo/smart-locks.yaml
kubectl apply -n "$NS" -f target/demo/smart-locks.yaml
kubectl wait -n "$NS" mkb/smart-locks --for=condition=Ready --timeout=120s >/dev/null ||
  { tail -n 20 target/demo/operator.log; fail "the bridge did not become Ready"; }
kubectl get -n "$NS" mkb smart-locks
echo "topics: $(kubectl get -n "$NS" mkb smart-locks -o jsonpath='{range .status.topics[*]}{.name}({.partitions} partitions, {.state}) {end}')"

say "Pod smart-locks-0 as a local bridge-runtime, with the ConfigMap the operator rendered"
kubectl get -n "$NS" configmap smart-locks-config -o 'jsonpath={.data.config\.yaml}' >target/demo/config.yaml
POD_NAME=smart-locks-0 "$bin/bridge-runtime" --config target/demo/config.yaml >target/demo/bridge-runtime.log 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  curl -sf http://127.0.0.1:9090/readyz >/dev/null && break
  sleep 0.2
done
curl -sf http://127.0.0.1:9090/readyz >/dev/null || { tail -n 20 target/demo/bridge-runtime.log; fail "bridge-runtime is not ready"; }

say "Devices publish their state (MQTT 5, QoS 1)"
since=$(($(date +%s%N) / 1000000))
run=$RANDOM
locks=(front-door garage back-door)
for lock in "${locks[@]}"; do
  payload="{\"device\":\"$lock\",\"locked\":true,\"run\":$run}"
  echo "devices/$lock/state  $payload"
  mosquitto_pub -p "$MQTT_PORT" -V mqttv5 -q 1 -t "devices/$lock/state" -m "$payload"
done

say "They are in Kafka topic lock-state, keyed by device id (kcat)"
for _ in $(seq 1 100); do
  kcat -b "$KAFKA_BOOTSTRAP" -C -t lock-state -o "s@$since" -e -q -f 'partition %p  key=%k  %s\n' |
    grep "\"run\":$run" >target/demo/states.txt || true
  [ "$(wc -l <target/demo/states.txt)" -ge ${#locks[@]} ] && break
  sleep 0.2
done
cat target/demo/states.txt
states=$(wc -l <target/demo/states.txt)

say "Commands produced to Kafka topic lock-command reach devices/<key>/command"
mosquitto_sub -p "$MQTT_PORT" -V mqttv5 -q 1 -t 'devices/+/command' -v -C 2 -W 30 >target/demo/commands.txt &
sub=$!
sleep 0.5
printf 'garage:{"cmd":"unlock","run":%s}\nfront-door:{"cmd":"lock","run":%s}\n' "$run" "$run" |
  kcat -b "$KAFKA_BOOTSTRAP" -P -t lock-command -K:
wait $sub || true
cat target/demo/commands.txt
commands=$(grep -c "\"run\":$run" target/demo/commands.txt || true)

say "Counts"
echo "device states: published ${#locks[@]}, in Kafka $states"
echo "commands:      produced 2, delivered over MQTT $commands"
curl -s http://127.0.0.1:9090/metrics | grep -E '^mkb_messages_(received|delivered)_total' || true
[ "$states" -eq ${#locks[@]} ] || fail "$states of ${#locks[@]} device states reached Kafka"
[ "$commands" -eq 2 ] || fail "$commands of 2 commands reached the devices"

say "Done: both flows delivered every message. The test bed keeps running ('make testbed-down' stops it);"
echo "the bridge stays in namespace $NS: kubectl --kubeconfig target/testbed/kubeconfig -n $NS get mkb"
