#!/usr/bin/env bash
# `make test` after lint: brings the test bed up, builds the images, runs every test of the
# workspace (unit, integration and end-to-end) against it, and stops the test bed again if it
# was not running before. Test processes log to target/test-logs; services to
# target/testbed/logs.
#
# One run at a time: the test bed's ports are fixed, so a second `make test` (this checkout or
# another) would share or fight over it; a lock in the cache directory refuses it at once.
# Whatever this run started is stopped when it ends, also when it is interrupted: every test
# process and the bridge-runtime and mkb-operator processes the tests spawn carry
# MKB_TEST_RUN in their environment, and the ones still running are killed.
#
# Every test binary runs even when an earlier one failed (`--no-fail-fast`); the names of the
# failed tests come last. While the tests run, net-guard watches the machine's sockets and fails
# the run if any talked to an address outside loopback and the pod network (docs/testbed.md).
# A run that started the test bed checks that stopping it left the routing as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
cd "$REPO_ROOT"
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/make-test.lock"
if ! flock -n 9; then
  die "another 'make test' is running on this machine (lock $CACHE_DIR/make-test.lock); wait for it to finish"
fi

was_running=false
[ -f "$ENV_FILE" ] && was_running=true

# Kills the processes of this run that are still there (test binaries, and what they
# spawned), except the test bed's services (a test may restart Kafka or Mosquitto).
stop_test_processes() {
  [ -n "${MKB_TEST_RUN:-}" ] || return 0
  # Untagged from here, so the commands below do not find themselves.
  local tag=$MKB_TEST_RUN pid left=() services
  unset MKB_TEST_RUN
  services=" $(cat "$STATE_DIR"/pids/*.pid 2>/dev/null | tr '\n' ' ') "
  for pid in $(grep -lsz "^MKB_TEST_RUN=$tag\$" /proc/[0-9]*/environ | cut -d/ -f3); do
    [ "$pid" != "$$" ] && [[ $services != *" $pid "* ]] && left+=("$pid")
  done
  if [ ${#left[@]} -gt 0 ]; then
    log "stopping ${#left[@]} test process(es) left running: ${left[*]}"
    kill -9 "${left[@]}" 2>/dev/null || true
  fi
}
routing_before=""
if ! $was_running; then
  clear_route_leftovers
  routing_before=$(routing_snapshot)
fi
finish() {
  local status=$?
  stop_test_processes
  if ! $was_running; then
    "$TESTBED_DIR/down.sh"
    local routing_after
    routing_after=$(routing_snapshot)
    if [ "$routing_after" != "$routing_before" ]; then
      log "error: the routing after 'make testbed-down' differs from before 'make testbed':"
      diff <(printf '%s\n' "$routing_before") <(printf '%s\n' "$routing_after") >&2 || true
      status=1
    fi
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$TESTBED_DIR/up.sh"
# From here on every process this run starts carries the tag (the test bed's services, started
# above, do not).
export MKB_TEST_RUN="$$-$(date +%s%N)"
# The images tests inspect what `make images` writes.
scripts/images.sh
cargo build --workspace --locked --bins
cargo test --workspace --locked --no-run
LOG=$REPO_ROOT/target/test-logs
mkdir -p "$LOG"
# Pods may also dial ClusterIPs: kube-proxy rewrites them to the pod network (service-network.sh).
"${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/net-guard" --allow "$POD_SUBNET" --allow-in-pods "$SERVICE_CIDR" \
  --log "$LOG/net-guard.log" &
guard=$!
# In the background, so a SIGTERM or SIGINT reaches the traps at once (bash runs them only
# after a foreground command ends). The output also goes to a file, for the summary below.
tests_ok=true
exec {out}> >(tee "$LOG/cargo-test.log")
tee_pid=$!
cargo test --workspace --locked --no-fail-fast -- --test-threads "${MKB_TEST_THREADS:-2}" >&"$out" 2>&1 &
wait $! || tests_ok=false
exec {out}>&-
# tee ends once the last writer has closed the pipe (a process a test left may hold it).
for _ in $(seq 50); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
guard_ok=true
kill -TERM "$guard" && wait "$guard" || guard_ok=false
# A service that died during the run fails every test after it; say which.
services_ok=true
for pidfile in "$PID_DIR"/*.pid; do
  [ -f "$pidfile" ] || continue
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    name=$(basename "$pidfile" .pid)
    log "error: the test bed's $name exited during the run; see $LOG_DIR/$name.log"
    services_ok=false
  fi
done
if ! $tests_ok; then
  log "failed tests:"
  grep -E '^test .* \.\.\. FAILED$|^error: test failed|^error: [0-9]+ targets? failed' "$LOG/cargo-test.log" >&2 || true
fi
$tests_ok && $guard_ok && $services_ok
