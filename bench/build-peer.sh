#!/usr/bin/env bash
# Builds the benchmark's peer, Redpanda Connect, from its published Go module (the wrapper in
# bench/peer: go.mod pins the release, go.sum its hashes) into the test bed's binary cache.
# Prints the binary's path.
set -euo pipefail
. "$(dirname "$0")/../tests/testbed/lib.sh"
command -v go >/dev/null || die "Go is required to build Redpanda Connect (https://go.dev/doc/install)"
src=$REPO_ROOT/bench/peer
version=$(sed -n "s#^\s*github.com/redpanda-data/connect/v4 \(v[^ ]*\)\$#\1#p" "$src/go.mod")
[ -n "$version" ] || die "bench/peer/go.mod does not name a github.com/redpanda-data/connect/v4 release"
# The stamp also covers the wrapper, so an edit to it rebuilds.
stamp_value="$version $(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
if ! is_current redpanda-connect "$stamp_value"; then
  log "building Redpanda Connect $version (the first build downloads its modules)"
  # go.sum pins every module's hash; the Go checksum database behind this machine's module
  # proxy does not carry these releases, so it is not asked (the hashes in go.sum still are).
  (cd "$src" && GONOSUMDB=github.com/redpanda-data GOFLAGS="-buildvcs=false -mod=readonly" \
    go build -trimpath -ldflags "-s -w -X main.Version=$version" -o "$BIN_DIR/redpanda-connect" .)
  stamp redpanda-connect "$stamp_value"
fi
echo "$BIN_DIR/redpanda-connect"
