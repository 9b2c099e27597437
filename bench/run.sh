#!/usr/bin/env bash
# `make bench`: builds what the benchmark runs (release bridge-runtime, operator and load
# generator; Redpanda Connect from its Go module; matplotlib for the plots, in a cached venv),
# starts the test bed if it is not running (and stops it again afterwards), runs every part and
# writes bench/results/{results.json,results.md,*.png}. Arguments go to mkb-bench, e.g.
#   make bench BENCH_ARGS="--only throughput --samples 3 --messages 100000"
#   make bench BENCH_ARGS="--out /tmp/partial --only operator"   # leaves bench/results alone
set -euo pipefail
cd "$(dirname "$0")/.."
# Where the results go: bench/results unless the arguments name another directory.
out=bench/results
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --out) out=${args[$((i + 1))]:-$out} ;;
    --out=*) out=${args[$i]#--out=} ;;
  esac
done
. tests/testbed/lib.sh
env_file=target/testbed/env
was_running=false
[ -f "$env_file" ] && was_running=true
# An interrupted run (Ctrl-C) ends mkb-bench before it can stop its own Mosquitto and subject.
finish() {
  pkill -f "mosquitto -c $out/work/mosquitto.conf" || true
  pkill -f "$out/work/.*\.yaml" || true
  $was_running || tests/testbed/down.sh
}
trap finish EXIT

peer=$(bench/build-peer.sh)
venv=$CACHE_DIR/bench-venv
if ! "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
  log "installing matplotlib for the plots into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "matplotlib>=3.8,<4"
fi
cargo build --release --locked -p bridge-runtime -p mkb-operator -p mkb-bench
# The brokers and the control plane the benchmark measures against; not the Kafka cluster or
# HiveMQ, whose JVMs would take CPU from what is measured.
tests/testbed/up.sh mosquitto kafka kubernetes
mkdir -p "$out"
# mkb-bench's own --out defaults to bench/results too; an --out in the arguments reaches it.
"${CARGO_TARGET_DIR:-target}/release/mkb-bench" --peer "$peer" "$@"
"$venv/bin/python" bench/plot.py "$out/results.json" "$out"
# A partial run makes only some of the plots (no throughput part, no throughput.png).
log "results in $out: $(cd "$out" && ls results.md results.json ./*.png 2>/dev/null | sed 's|^\./||' | tr '\n' ' ')"
