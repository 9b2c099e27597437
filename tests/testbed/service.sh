#!/usr/bin/env bash
# Controls one test-bed service, for tests that restart brokers:
#   service.sh start|stop|restart mosquitto|kafka|toxiproxy|kubernetes|apiserver|node
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
action=${1:-}
name=${2:-}
case "$name" in
  mosquitto | kafka | toxiproxy | kubernetes | apiserver | node) ;;
  *) die "usage: service.sh start|stop|restart mosquitto|kafka|toxiproxy|kubernetes|apiserver|node" ;;
esac
# KWOK 0.8 (the fake nodes' kubelet) can lose a pod that is re-created under the same name
# while it recovers its watches after an API server restart: the StatefulSet's new pod is
# then never made Ready. A real kubelet does not, so a restarted API server gets a fresh KWOK.
restart_apiserver() {
  stop_apiserver && start_apiserver && stop_process kwok "bin/kwok" && start_kwok
}
case "$action" in
  start) "start_$name" ;;
  stop) "stop_$name" ;;
  restart) if [ "$name" = apiserver ]; then restart_apiserver; else "stop_$name" && "start_$name"; fi ;;
  *) die "usage: service.sh start|stop|restart mosquitto|kafka|toxiproxy|kubernetes|apiserver|node" ;;
esac
