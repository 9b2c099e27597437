#!/usr/bin/env bash
# Loads the pause image and the archives `make images` wrote (target/images/*.tar) into the
# real node's containerd, when the node runs; pods use them with imagePullPolicy IfNotPresent.
. "$(dirname "$0")/lib.sh"
. "$TESTBED_DIR/services.sh"
import_node_images
