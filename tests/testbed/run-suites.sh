#!/usr/bin/env bash
# `make test` after lint: brings the test bed up, builds the images, runs every test of the workspace (unit,
# integration and end-to-end) against it, and stops the test bed again if it was not running
# before. Test processes log to target/test-logs; services to target/testbed/logs.
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
was_running=false
[ -f "$ENV_FILE" ] && was_running=true
if ! $was_running; then
  trap '"$TESTBED_DIR/down.sh"' EXIT
fi
"$TESTBED_DIR/up.sh"
# The images tests inspect what `make images` writes.
scripts/images.sh
cargo build --workspace --locked --bins
cargo test --workspace --locked -- --test-threads "${MKB_TEST_THREADS:-2}"
