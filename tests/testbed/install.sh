#!/usr/bin/env bash
# Installs what the test bed needs and is missing: Debian packages (Mosquitto, its clients,
# kcat, lua5.4), the Go programs (built into the cache) and Apache Kafka (resolved from Maven Central).
#   install.sh [service...]   only what those services need (default: everything)
. "$(dirname "$0")/lib.sh"
wants() { local want=$1 s; shift; for s in "$@"; do [ "$s" = "$want" ] && return 0; done; return 1; }

# lua5.4 runs the Argo CD health check of docs/gitops.md in the tests; iproute2 has `ss`, which
# the network guard of `make test` reads. The real node needs the
# CNI plugins, buildah (its pause image), and gcc with libseccomp for runc.
APT_PACKAGES=(mosquitto mosquitto-clients kcat openssl curl lua5.4 iproute2)
if [ $# -eq 0 ] || wants node "$@"; then
  APT_PACKAGES+=(containernetworking-plugins buildah gcc libc6-dev libseccomp-dev pkg-config)
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ $# -eq 0 ] || wants kubernetes "$@" || wants toxiproxy "$@" || wants node "$@"; then
  "$TESTBED_DIR/build-go.sh"
fi
if [ $# -eq 0 ] || wants kafka "$@" || wants kafka-cluster "$@"; then
  "$TESTBED_DIR/install-kafka.sh"
fi
if [ $# -eq 0 ] || wants hivemq "$@"; then
  "$TESTBED_DIR/install-hivemq.sh"
fi
