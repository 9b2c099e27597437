#!/usr/bin/env bash
# `make reliability`: bridge-runtime under sustained QoS 1 load both ways, one fault at a time
# (see docs/reliability.md). Starts what it needs of the test bed (Mosquitto, Kafka, the Kafka
# cluster, HiveMQ, toxiproxy, and Kubernetes, whose operator creates the cluster rows' topics)
# and stops it again if it was not running. Arguments go to the runner: --short, --only a,b.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=target/testbed/env
was_running=false
[ -f "$env_file" ] && was_running=true
finish() { $was_running || tests/testbed/down.sh; }
trap finish EXIT
tests/testbed/up.sh mosquitto kafka kafka-cluster hivemq toxiproxy kubernetes
cargo build --locked --workspace --bins
"${CARGO_TARGET_DIR:-target}/debug/reliability" "$@"
