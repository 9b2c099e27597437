#!/usr/bin/env bash
# make demo: runs the smart-lock bridge (bridge-runtime, standalone) against a local Mosquitto
# and Kafka, and shows messages flowing both ways.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=examples/runtime/smart-locks.yaml
TESTBED_BIN_DIR=${MKB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-kafka-bridge}/bin
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting Mosquitto and Kafka on 127.0.0.1 (tests/testbed/up.sh mosquitto kafka)"
tests/testbed/up.sh mosquitto kafka
set -a; . target/testbed/env; set +a

say "Creating Kafka topics lock-state (6 partitions), lock-command, smart-locks.dead-letter"
for spec in lock-state:6 lock-command:3 smart-locks.dead-letter:1; do
  java -cp "$KAFKA_HOME/libs/*" -Dlog4j2.level=WARN org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists --topic "${spec%%:*}" --partitions "${spec##*:}" 2>/dev/null
done

say "Building bridge-runtime"
cargo build --quiet --locked -p bridge-runtime
runtime=${CARGO_TARGET_DIR:-target}/debug/bridge-runtime
"$runtime" --check --config "$CONFIG"

say "Running: bridge-runtime --config $CONFIG"
mkdir -p target/demo
"$runtime" --config "$CONFIG" >target/demo/bridge-runtime.log 2>&1 &
bridge=$!
trap 'kill -TERM $bridge 2>/dev/null; wait $bridge 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:9090/readyz >/dev/null && break
  kill -0 $bridge 2>/dev/null || { cat target/demo/bridge-runtime.log; exit 1; }
  sleep 0.2
done
curl -sf http://127.0.0.1:9090/readyz

say "Devices publish their state (MQTT, QoS 1)"
since=$(($(date +%s%N) / 1000000))
for lock in front-door garage back-door; do
  payload="{\"device\":\"$lock\",\"locked\":true,\"battery\":$((RANDOM % 100))}"
  echo "devices/$lock/state  $payload"
  mosquitto_pub -p "$MQTT_PORT" -V mqttv5 -q 1 -t "devices/$lock/state" -m "$payload"
done

say "They are in Kafka topic lock-state, keyed by device id (kcat)"
for _ in $(seq 1 100); do
  kcat -b "$KAFKA_BOOTSTRAP" -C -t lock-state -o "s@$since" -e -q -f 'partition %p  key=%k  %s\n' >target/demo/states.txt
  [ "$(wc -l <target/demo/states.txt)" -ge 3 ] && break
  sleep 0.2
done
cat target/demo/states.txt

say "A command produced to Kafka topic lock-command reaches devices/<key>/command"
mosquitto_sub -p "$MQTT_PORT" -V mqttv5 -q 1 -t 'devices/+/command' -v -C 2 -W 20 >target/demo/commands.txt &
sub=$!
sleep 0.5
printf 'garage:{"cmd":"unlock"}\nfront-door:{"cmd":"lock"}\n' | kcat -b "$KAFKA_BOOTSTRAP" -P -t lock-command -K:
wait $sub || true
cat target/demo/commands.txt

say "Metrics (http://127.0.0.1:9090/metrics)"
curl -s http://127.0.0.1:9090/metrics | grep -E '^mkb_messages_(received|delivered)_total'

say "Done. The bridge stops now (SIGTERM); Mosquitto and Kafka keep running until 'make testbed-down'."
