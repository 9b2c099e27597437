#!/usr/bin/env bash
# Stops what up.sh started, by pid. Data and logs stay in target/testbed for post-mortems;
# `down.sh --purge` removes them too.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
stop_node
stop_kubernetes
stop_toxiproxy
stop_kafka
stop_mosquitto
stop_pod_network
remove_unserved_routes
rm -f "$ENV_FILE"
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$STATE_DIR"
fi
log "stopped"
