#!/usr/bin/env bash
# Starts the test bed on 127.0.0.1 (installing what is missing first) and writes
# target/testbed/env. Running it again leaves running services alone.
#   up.sh                    everything, with the real node (needs root)
#   up.sh mosquitto kafka    only these (what `make demo` needs)
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
started=$SECONDS
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(mosquitto kafka kafka-cluster hivemq toxiproxy kubernetes node)
"$TESTBED_DIR/install.sh" "${services[@]}"
mkdir -p "$STATE_DIR"
register_testbed
unreachable_declared_ranges
log "starting ${services[*]} (state and logs in $STATE_DIR)"
# The brokers listen on the pod network too when it is there, so it comes first.
for s in "${services[@]}"; do [ "$s" != node ] || start_pod_network; done
for s in "${services[@]}"; do
  case "$s" in
    mosquitto | kafka | kafka-cluster | hivemq | toxiproxy | kubernetes | node) "start_${s//-/_}" ;;
    *) die "unknown service $s (mosquitto, kafka, kafka-cluster, hivemq, toxiproxy, kubernetes, node)" ;;
  esac
done
make_tls_material
write_env
log "ready in $((SECONDS - started))s: $ENV_FILE"
