#!/usr/bin/env bash
# make demo: the smart-lock bridge the way a platform team runs it, all inside the cluster.
# Brings the test bed up (Mosquitto, Kafka and a Kubernetes control plane on this host, and the
# real node: a kubelet with containerd, kube-proxy and CoreDNS), builds the images and loads
# them into the node, `helm install`s the operator (its pod runs on the real node), applies
# examples/smart-locks.yaml as it is (placed on the real node by a merge patch), and shows
# device states reaching Kafka and commands reaching the devices, with counts. The bridge pod
# finds the brokers by their Service names. Exits 0 only when both flows delivered every
# message. Needs root: the real node changes the host (docs/testbed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[1;31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }
NS=smart-locks-demo
RELEASE=mkb
DEPLOYMENT=$RELEASE-mqtt-kafka-bridge-operator
[ "$(id -u)" -eq 0 ] || fail "the demo runs pods on the test bed's real node, which needs root (containerd, the kubelet and the pod network change the host)"
mkdir -p target/demo

say "Starting the test bed: brokers, control plane and the real node (the first run builds them)"
tests/testbed/up.sh mosquitto kafka kubernetes node
set -a; . target/testbed/env; set +a
export PATH="$TESTBED_BIN:$PATH"
export KUBECONFIG

say "Building the images (make images) and loading them into the node's containerd"
scripts/images.sh

say "helm install $RELEASE charts/mqtt-kafka-bridge-operator -n $NS (the operator as a pod)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The bridge pods and the operator meet the restricted Pod Security Standard.
kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
helm upgrade --install "$RELEASE" charts/mqtt-kafka-bridge-operator -n "$NS" \
  --set "watchNamespaces={$NS}" -f examples/testbed/operator-values.yaml --wait --timeout 180s >/dev/null ||
  { kubectl -n "$NS" get pods -o wide; fail "the operator did not become Ready"; }
kubectl -n "$NS" get deployment "$DEPLOYMENT"

say "kubectl apply -f examples/smart-locks.yaml (placed on the real node by examples/testbed/real-node-patch.yaml)"
kubectl patch --local -f examples/smart-locks.yaml --type merge \
  --patch-file examples/testbed/real-node-patch.yaml -o yaml | kubectl apply -n "$NS" -f -
# Ready for this generation: an earlier run's status must not count.
generation=$(kubectl get -n "$NS" mkb smart-locks -o jsonpath='{.metadata.generation}')
kubectl wait -n "$NS" mkb/smart-locks --for=jsonpath='{.status.observedGeneration}'="$generation" --timeout=180s >/dev/null &&
  kubectl wait -n "$NS" mkb/smart-locks --for=condition=Ready --timeout=180s >/dev/null ||
  {
    kubectl -n "$NS" get mkb smart-locks -o jsonpath='{.status.conditions}'; echo
    kubectl -n "$NS" logs "deployment/$DEPLOYMENT" --tail 20
    fail "the bridge did not become Ready"
  }
kubectl get -n "$NS" mkb smart-locks
echo "topics: $(kubectl get -n "$NS" mkb smart-locks -o jsonpath='{range .status.topics[*]}{.name}({.partitions} partitions, {.state}) {end}')"
kubectl get pods -A -o wide --field-selector "spec.nodeName=$REAL_NODE"

say "Devices publish their state (MQTT 5, QoS 1) to Mosquitto; the bridge pod reads it from mosquitto.iot.svc"
since=$(($(date +%s%N) / 1000000))
run=$RANDOM
locks=(front-door garage back-door)
for lock in "${locks[@]}"; do
  payload="{\"device\":\"$lock\",\"locked\":true,\"run\":$run}"
  echo "devices/$lock/state  $payload"
  mosquitto_pub -p "$MQTT_PORT" -V mqttv5 -q 1 -t "devices/$lock/state" -m "$payload"
done

say "They are in Kafka topic lock-state, keyed by device id (kcat)"
for _ in $(seq 1 150); do
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
pod_ip=$(kubectl -n "$NS" get pod smart-locks-0 -o jsonpath='{.status.podIP}')
curl -s "http://$pod_ip:9090/metrics" | grep -E '^mkb_messages_(received|delivered)_total' || true
[ "$states" -eq ${#locks[@]} ] || fail "$states of ${#locks[@]} device states reached Kafka"
[ "$commands" -eq 2 ] || fail "$commands of 2 commands reached the devices"

say "Done: both flows delivered every message. The test bed keeps running ('make testbed-down' stops it);"
echo "the operator and the bridge stay in namespace $NS: kubectl --kubeconfig target/testbed/kubeconfig -n $NS get pods,mkb"
