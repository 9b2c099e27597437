# Address ranges the test bed declares, and where each goes (sourced after lib.sh).
#
# The host's default route leads off the machine. Two ranges are declared to Kubernetes but
# served by nothing here: KWOK's fake pod IPs and the API server's Service (ClusterIP) range.
# Anything dialling them (the operator asking a KWOK pod's /readyz, a process dialling a
# ClusterIP) must fail on this host, never be routed out. As root they get `unreachable`
# routes while the test bed is up, and the pod network's forwarded traffic may only stay on the
# machine (a policy rule: what pods send to neither a pod nor the host is unreachable; the CNI
# bridge plugin turns IP forwarding on). Without root (no real node, no routes to change)
# KWOK's pods get loopback addresses instead, which cannot leave the machine either, and the
# Service range stays unserved: no pod runs that could dial it.
# The two declared ranges stay unreachable after `down.sh` too: nothing on a test machine
# serves them, and a range the test bed's files declare must never fall to the default route,
# also between two runs. `down.sh --purge` gives them back. The pod network's rule is removed
# by `down.sh` with the network (each such addition is recorded in a file).

if [ "$(id -u)" -eq 0 ]; then
  KWOK_POD_CIDR=10.244.0.0/16
else
  KWOK_POD_CIDR=127.244.0.0/16
fi
SERVICE_CIDR=10.96.0.0/16
# The policy-routing table and rule priority for traffic forwarded from the pod network.
POD_EGRESS_TABLE=1088
ROUTES_FILE=$STATE_DIR/routes-added
# The routes are the machine's, the test beds are per checkout: every test bed that is up is
# registered here, so that one checkout's teardown or clean-up never removes the routes while
# another checkout's test bed still declares the ranges.
REGISTRY_DIR=$CACHE_DIR/testbeds

registry_entry() {
  printf '%s/%s' "$REGISTRY_DIR" "$(printf '%s' "$STATE_DIR" | md5sum | cut -c1-16)"
}

# Called by up.sh: this checkout's test bed is up.
register_testbed() {
  mkdir -p "$REGISTRY_DIR"
  printf '%s\n' "$STATE_DIR" >"$(registry_entry)"
}

# Called by down.sh.
unregister_testbed() {
  rm -f "$(registry_entry)"
}

# Prints the state directory of another checkout's test bed that is up (its env file is there
# and one of its services runs); forgets the entries of test beds that are gone.
other_testbed_up() {
  local entry dir pid
  for entry in "$REGISTRY_DIR"/*; do
    [ -f "$entry" ] || continue
    dir=$(cat "$entry")
    [ "$dir" != "$STATE_DIR" ] || continue
    if [ -f "$dir/env" ]; then
      for pid in $(cat "$dir"/pids/*.pid 2>/dev/null); do
        if kill -0 "$pid" 2>/dev/null; then
          printf '%s\n' "$dir"
          return 0
        fi
      done
    fi
    rm -f "$entry"
  done
  return 1
}

# Records `ip` arguments that added something, for `remove_unserved_routes`.
record_route() {
  mkdir -p "$STATE_DIR"
  grep -qxF "$*" "$ROUTES_FILE" 2>/dev/null || printf '%s\n' "$*" >>"$ROUTES_FILE"
}

# Makes `cidr` unreachable on this host; called by up.sh for every declared range, and again
# by the component that uses the range (start_apiserver, start_kwok), so that a start through
# service.sh on a machine that lost its routes (a restart) gets it too. `replace` works
# whether or not the route is there: the kernel's table decides. Not recorded: the route
# stays after `down.sh` (see the top).
unreachable_route() { # cidr
  [ "$(id -u)" -eq 0 ] || return 0
  ip route replace unreachable "$1" || die "cannot make $1 unreachable: ip route replace unreachable $1"
}

# `down.sh --purge`: the declared ranges back to the host's routing, unless another
# checkout's test bed is up.
release_declared_ranges() {
  [ "$(id -u)" -eq 0 ] || return 0
  local cidr other
  if other=$(other_testbed_up); then
    log "the test bed in $other is up: the declared ranges stay unreachable"
    return 0
  fi
  for cidr in "$KWOK_POD_CIDR" "$SERVICE_CIDR"; do
    ip route del unreachable "$cidr" 2>/dev/null || true
  done
}

# Every range the env file declares (TESTBED_UNSERVED_RANGES), made unreachable by up.sh
# before any service starts, whichever services it starts: the ranges are unreachable from
# the test bed's first start on, not only once the component that uses them runs.
unreachable_declared_ranges() {
  unreachable_route "$KWOK_POD_CIDR"
  unreachable_route "$SERVICE_CIDR"
}

# What the real node's pods send to neither a pod nor the host is unreachable, not forwarded
# out; called by start_pod_network.
pod_egress_rule() {
  [ "$(id -u)" -eq 0 ] || return 0
  ip route replace unreachable default table "$POD_EGRESS_TABLE" ||
    die "cannot add the pod network's egress table $POD_EGRESS_TABLE"
  record_route route add unreachable default table "$POD_EGRESS_TABLE"
  if ! ip rule show priority "$POD_EGRESS_TABLE" | grep -q .; then
    ip rule add iif "$POD_BRIDGE" lookup "$POD_EGRESS_TABLE" priority "$POD_EGRESS_TABLE" ||
      die "cannot add the pod network's egress rule"
  fi
  record_route rule add iif "$POD_BRIDGE" lookup "$POD_EGRESS_TABLE" priority "$POD_EGRESS_TABLE"
}

# The kernel keeps routes after the processes are gone: a test bed that was not stopped (its
# processes killed, its checkout deleted) leaves its pod network's rule. `make test` removes
# it before it snapshots the routing, when no test bed is running, and makes the declared
# ranges unreachable (they stay so), so that its before/after comparison sees only what this
# run added.
clear_route_leftovers() {
  [ "$(id -u)" -eq 0 ] || return 0
  local found=false other
  unreachable_declared_ranges
  if other=$(other_testbed_up); then
    log "the test bed in $other is up: its routes stay"
    rm -f "$ROUTES_FILE"
    return 0
  fi
  if ip rule show priority "$POD_EGRESS_TABLE" | grep -q .; then
    ip rule del priority "$POD_EGRESS_TABLE"
    found=true
  fi
  if ip route show table "$POD_EGRESS_TABLE" 2>/dev/null | grep -q .; then
    ip route flush table "$POD_EGRESS_TABLE"
    found=true
  fi
  rm -f "$ROUTES_FILE"
  if $found; then log "removed the routes a test bed that was not stopped left behind"; fi
}

# Undoes the lines of $ROUTES_FILE, last first ("route add …" becomes "route del …"), unless
# another checkout's test bed is up (the routes are the same for both).
remove_unserved_routes() {
  [ -f "$ROUTES_FILE" ] || return 0
  local line other
  if other=$(other_testbed_up); then
    log "the test bed in $other is up and declares the same ranges: the routes stay"
    rm -f "$ROUTES_FILE"
    return 0
  fi
  tac "$ROUTES_FILE" | while read -r line; do
    # Recorded by an earlier version: the declared ranges stay unreachable now.
    case "$line" in *" unreachable $KWOK_POD_CIDR" | *" unreachable $SERVICE_CIDR") continue ;; esac
    # shellcheck disable=SC2086 # the recorded arguments, split as they were given
    ip ${line/ add / del } 2>/dev/null || log "could not undo 'ip $line' (already gone?)"
  done
  rm -f "$ROUTES_FILE"
}

# What the routing looks like, for comparing before `make testbed` and after `make testbed-down`:
# the rules and routes, and the Kubernetes chains of the packet filter (kube-proxy's and the
# kubelet's, service-network.sh).
routing_snapshot() {
  ip -4 rule show
  ip -6 rule show 2>/dev/null || true
  ip -4 route show table all
  ip -6 route show table all 2>/dev/null || true
  local ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    "$ipt-save" 2>/dev/null | grep -E '^(:|-A ).*KUBE-' | sed "s/^/$ipt: /; s/ \[[0-9]*:[0-9]*\]//" || true
  done
}
