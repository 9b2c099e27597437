#!/usr/bin/env bash
# The runtime must not link the Kubernetes client: it runs standalone and in pods without an
# API token. Checks bridge-runtime's own dependency graph (cargo resolves it without the
# operator's features).
set -euo pipefail
if cargo tree --locked -p bridge-runtime -e normal --prefix none | grep -E '^(kube|kube-client|k8s-openapi) '; then
  echo "bridge-runtime depends on the Kubernetes client (see above); keep mkb-api's k8s feature off" >&2
  exit 1
fi
