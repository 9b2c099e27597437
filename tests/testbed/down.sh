#!/usr/bin/env bash
# Stops what up.sh started, by pid. Data and logs stay in target/testbed for post-mortems, and
# the declared ranges stay unreachable (addresses.sh); `down.sh --purge` removes both too.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
stop_node
stop_kubernetes
stop_toxiproxy
stop_kafka
stop_kafka_cluster
stop_hivemq
stop_mosquitto
stop_pod_network
# The env file (which declares the ranges) goes first, then the routes that kept them on the
# machine: no moment where the test bed is declared up and a declared range routes out.
rm -f "$ENV_FILE"
remove_unserved_routes
unregister_testbed
if [ "${1:-}" = "--purge" ]; then
  release_declared_ranges
  rm -rf "$STATE_DIR"
fi
log "stopped"
