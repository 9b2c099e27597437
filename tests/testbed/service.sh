#!/usr/bin/env bash
# Controls one test-bed service, for tests that restart brokers:
#   service.sh start|stop|restart SERVICE
#   service.sh start|stop|restart|kill kafka-cluster/N   one node of the cluster (N = 1, 2, 3)
# SERVICE: mosquitto, kafka, kafka-cluster, hivemq, toxiproxy, kubernetes, apiserver, node.
# `kill` is kill -9 (the failover tests' fault); a node started again is waited for until the
# cluster lists all three brokers.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
USAGE="usage: service.sh start|stop|restart mosquitto|kafka|kafka-cluster|hivemq|toxiproxy|kubernetes|apiserver|node, or service.sh start|stop|restart|kill kafka-cluster/N (N = 1, 2, 3)"
action=${1:-}
name=${2:-}
# One action per service at a time: two restarts of one broker at once (two tests of a binary)
# would each start a copy, one losing the port and the other its pid file. The script runs
# again under the lock; -o keeps the services it starts from inheriting (and holding) it.
[ -n "$name" ] || die "$USAGE"
if [ "${MKB_SERVICE_LOCK:-}" != "$name" ]; then
  mkdir -p "$STATE_DIR"
  MKB_SERVICE_LOCK=$name exec flock -o "$STATE_DIR/service-${name//\//-}.lock" "$0" "$@"
fi
unset MKB_SERVICE_LOCK
if [[ $name =~ ^kafka-cluster/([123])$ ]]; then
  node=${BASH_REMATCH[1]}
  case "$action" in
    start) start_kafka_cluster_node "$node" ;;
    stop) stop_kafka_node "$node" ;;
    restart) stop_kafka_node "$node" && start_kafka_cluster_node "$node" ;;
    kill) kill_kafka_node "$node" ;;
    *) die "$USAGE" ;;
  esac
  exit 0
fi
case "$name" in
  mosquitto | kafka | kafka-cluster | hivemq | toxiproxy | kubernetes | apiserver | node) ;;
  *) die "$USAGE" ;;
esac
name=${name//-/_}
# KWOK 0.8 (the fake nodes' kubelet) can lose a pod that is re-created under the same name
# while it recovers its watches after an API server restart: the StatefulSet's new pod is
# then never made Ready. A real kubelet does not, so a restarted API server gets a fresh KWOK.
#
# kube-scheduler exits when its cache sees a pod on another node than the one it assumed for it
# (`klog.FlushAndExit` in its cache.go), which a binding answered while the API server goes away
# can cause. Seen in `make test`: "Pod updated on a different node than previously added to.
# Scheduler cache is corrupted", the scheduler gone, and no pod scheduled again for the rest of
# the run. A kubelet would restart a static-pod scheduler; here the scheduler is stopped for the
# outage and started against the restarted API server, with a fresh cache.
restart_apiserver() {
  stop_process kube-scheduler "bin/kube-scheduler"
  stop_apiserver && start_apiserver && start_scheduler && restart_kwok
}
# A KWOK started while the API server's caches still lag can list a pod that is already
# gone; its delete then fails ("failed to delete pod plant-0: pods "plant-0" not found") and
# from then on it makes no pod Ready. Seen with the KWOK started right after an API server
# restart; a KWOK started a few seconds later lists what is there. So: start one, and if it
# logs that failure within a few seconds, start another (at most three).
KWOK_WEDGED='failed to delete pod .* not found'
restart_kwok() {
  local attempt before
  for attempt in 1 2 3; do
    stop_process kwok "bin/kwok"
    before=$(wc -l <"$LOG_DIR/kwok.log" 2>/dev/null || echo 0)
    start_kwok
    sleep 5
    tail -n +"$((before + 1))" "$LOG_DIR/kwok.log" | grep -q "$KWOK_WEDGED" || return 0
    log "KWOK lost a pod deleted while the API server was away (attempt $attempt); starting it again"
  done
}
case "$action" in
  start) "start_$name" ;;
  stop) "stop_$name" ;;
  restart) if [ "$name" = apiserver ]; then restart_apiserver; else "stop_$name" && "start_$name"; fi ;;
  *) die "$USAGE" ;;
esac
