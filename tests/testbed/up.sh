#!/usr/bin/env bash
# Starts the test bed on 127.0.0.1 (installing what is missing first) and writes
# target/testbed/env. Running it again leaves running services alone.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
started=$SECONDS
"$TESTBED_DIR/install.sh"
mkdir -p "$STATE_DIR"
log "starting services (state and logs in $STATE_DIR)"
start_mosquitto
start_kafka
start_toxiproxy
start_kubernetes
write_env
log "ready in $((SECONDS - started))s: $ENV_FILE"
