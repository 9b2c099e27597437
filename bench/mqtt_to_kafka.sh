#!/usr/bin/env bash
# MQTT -> Kafka drain rate of bridge-runtime against a bare MQTT subscriber, same broker, same
# run. Both drain N QoS 1 messages that were queued in their persistent session while they
# were offline; the ratio bridge/bare is the figure (DESIGN target: >= 0.9).
#   bench/mqtt_to_kafka.sh [N]     (default 200000; needs `make testbed` or starts Mosquitto + Kafka)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
tests/testbed/up.sh mosquitto kafka >/dev/null
set -a; . target/testbed/env; set +a
run=bench$$
mkdir -p target/bench
cargo build --quiet --locked --release -p bridge-runtime
runtime=${CARGO_TARGET_DIR:-target}/release/bridge-runtime
java -cp "$KAFKA_HOME/libs/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
  --create --topic "$run-state" --partitions 6 >/dev/null 2>&1
# Ten devices publish N/10 messages each at QoS 1 (mosquitto_pub -l would exit before its
# queue is sent; --repeat waits for each message).
publish() {
  local d
  for d in $(seq 0 9); do
    mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$run/devices/lock-$d/state" -m "{\"device\":\"lock-$d\",\"locked\":true}" --repeat $((N / 10)) &
  done
  wait
}
N=$((N / 10 * 10))
now() { date +%s.%N; }
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; true' EXIT
# Polls a command until it succeeds, for at most $1 seconds.
within() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "bench: gave up waiting for: $*" >&2; exit 1; }
    sleep 0.05
  done
}

# Baseline: a bare persistent subscriber (mosquitto_sub, C) drains its queue.
mosquitto_sub -p "$MQTT_PORT" -c -i "$run-bare" -q 1 -t "$run/devices/+/state" -E
publish
t0=$(now)
timeout 600 mosquitto_sub -p "$MQTT_PORT" -c -i "$run-bare" -q 1 -t "$run/devices/+/state" -C "$N" >/dev/null
bare=$(echo "$N / ($(now) - $t0)" | bc -l)

# The bridge: create its session, stop it, queue N messages, start it, time until Kafka has all.
port=$((20000 + RANDOM % 10000))
cat >target/bench/bridge.yaml <<YAML
bridgeName: $run
mqtt: {url: "$MQTT_URL"}
kafka: {bootstrapServers: "$KAFKA_BOOTSTRAP", producer: {lingerMs: 5, compression: lz4}}
mqttToKafka:
  - name: state
    mqtt: {topicFilters: ["$run/devices/+/state"]}
    kafka: {topic: $run-state, key: "\${topic[2]}"}
http: {listen: "127.0.0.1:$port"}
logging: {level: warn}
YAML
delivered() { curl -s "127.0.0.1:$port/metrics" | awk '/^mkb_messages_delivered_total/ {print $2}'; }
"$runtime" --config target/bench/bridge.yaml & pid=$!
within 60 curl -sf "127.0.0.1:$port/readyz" -o /dev/null
kill -TERM $pid
wait $pid
pid=
publish
t0=$(now)
"$runtime" --config target/bench/bridge.yaml & pid=$!
all_delivered() { [ "$(delivered)" = "$N" ]; }
within 600 all_delivered
bridge=$(echo "$N / ($(now) - $t0)" | bc -l)
rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
kill -TERM $pid
wait $pid
pid=
printf 'messages %d\nbare subscriber  %8.0f msg/s\nbridge-runtime   %8.0f msg/s (into Kafka, acks after delivery reports)\nratio            %8.2f\nbridge peak RSS  %8.1f MB\n' \
  "$N" "$bare" "$bridge" "$(echo "$bridge / $bare" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
