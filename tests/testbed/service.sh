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
case "$action" in
  start) "start_$name" ;;
  stop) "stop_$name" ;;
  restart) "stop_$name" && "start_$name" ;;
  *) die "usage: service.sh start|stop|restart mosquitto|kafka|toxiproxy|kubernetes|apiserver|node" ;;
esac
