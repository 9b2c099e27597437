#!/usr/bin/env bash
# Builds the Go programs of the test bed into the cache: Kubernetes (apiserver, controller-manager,
# scheduler, kubelet, kube-proxy, kubectl), etcd and CoreDNS through wrapper modules; KWOK,
# Helm, kubeconform, toxiproxy, containerd and runc with `go install`; the node's pause image.
# Each is skipped when the cached binary already has the pinned version.
. "$(dirname "$0")/lib.sh"
command -v go >/dev/null || die "Go is required to build the test bed (https://go.dev/doc/install)"
mkdir -p "$BIN_DIR" "$CACHE_DIR/src"

# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules with local
# paths. A wrapper module requires it and points every staging module at its published v0.Y.Z.
build_kubernetes() {
  local v=$KUBERNETES_VERSION cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=()
  for c in "${cmds[@]}"; do is_current "$c" "$v" || missing+=("$c"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "building Kubernetes $v: ${missing[*]} (the first build takes a while)"
  local dir=$CACHE_DIR/src/kubernetes-$v staging_v=v0.${v#v1.}
  mkdir -p "$dir"
  local upstream_mod
  upstream_mod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [ -f "$upstream_mod" ] || die "could not download k8s.io/kubernetes@$v"
  {
    echo "module testbed.local/kubernetes"
    echo
    grep -m1 '^go ' "$upstream_mod"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\t\1 => \1 '"$staging_v"'#p' "$upstream_mod"
    echo ")"
  } >"$dir/go.mod"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2)"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$v"
  for c in "${missing[@]}"; do
    (cd "$dir" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$c" "k8s.io/kubernetes/cmd/$c")
    stamp "$c" "$v"
  done
}

# etcd's main module has the same replace problem; its server module exposes etcdmain.Main.
build_etcd() {
  local v=$ETCD_VERSION
  is_current etcd "$v" && return 0
  log "building etcd $v"
  local dir=$CACHE_DIR/src/etcd-$v
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module testbed.local/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $v
GOMOD
  cat >"$dir/main.go" <<'GO'
// Command etcd runs the etcd server from the published server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" .)
  stamp etcd "$v"
}

# CoreDNS, the cluster DNS of the real node's pods, with only the plugins its Corefile
# (service-network.sh) uses: a main of our own that sets the directive list and imports those
# plugins, the way CoreDNS documents builds with a chosen plugin set. The stock build links
# every plugin, cloud providers' SDKs included, and takes far longer on two cores.
COREDNS_PLUGINS=(bind ready health errors cache template kubernetes)
build_coredns() {
  local v=$COREDNS_VERSION stampv="$COREDNS_VERSION ${COREDNS_PLUGINS[*]}"
  is_current coredns "$stampv" && return 0
  log "building CoreDNS $v (plugins: ${COREDNS_PLUGINS[*]})"
  local dir=$CACHE_DIR/src/coredns-$v p
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module testbed.local/coredns

go 1.26.0

require github.com/coredns/coredns $v
GOMOD
  {
    echo "// Command coredns runs CoreDNS with the test bed's plugins only."
    echo "package main"
    echo
    echo "import ("
    printf '\t"github.com/coredns/coredns/core/dnsserver"\n'
    printf '\t"github.com/coredns/coredns/coremain"\n'
    for p in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"; done
    echo ")"
    echo
    echo "// In CoreDNS's plugin.cfg order, which is the order a query passes the plugins."
    printf 'var directives = []string{'
    for p in "${COREDNS_PLUGINS[@]}"; do printf '"%s", ' "$p"; done
    echo "}"
    echo
    echo "func init() { dnsserver.Directives = directives }"
    echo
    echo "func main() { coremain.Run() }"
  } >"$dir/main.go"
  gofmt -w "$dir/main.go"
  (cd "$dir" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/coredns" .)
  stamp coredns "$stampv"
}

# A released helm reports its own version, and the Kubernetes version of the client-go it was
# built with as the default for `helm template` (its Makefile sets both with -X). A plain
# `go install` leaves the defaults: "v3" and Kubernetes v1.20.0, which fails every chart with
# a kubeVersion constraint like ours. The same flags here, read from helm's go.mod.
install_helm() {
  local v=$HELM_VERSION gomod minor
  gomod=$(cd "$CACHE_DIR" && go mod download -json "helm.sh/helm/v3@$v" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  # client-go v0.N.x is Kubernetes 1.N.
  minor=$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")
  [ -n "$minor" ] || die "cannot find the client-go version in helm $v's go.mod ($gomod)"
  local pkg=helm.sh/helm/v3
  go_install helm "$v (kubernetes 1.$minor)" "$pkg/cmd/helm" "$v" -ldflags "-s -w -X $pkg/internal/version.version=$v \
    -X $pkg/internal/version.gitTreeState=clean -X $pkg/pkg/chartutil.k8sVersionMajor=1 \
    -X $pkg/pkg/chartutil.k8sVersionMinor=$minor -X $pkg/pkg/lint/rules.k8sVersionMajor=1 \
    -X $pkg/pkg/lint/rules.k8sVersionMinor=$minor"
}

go_install() { # name stamp-version package [module-version, default the stamp] [go build flags...]
  local stampv=$2 modv=${4:-$2}
  is_current "$1" "$stampv" && return 0
  log "installing $1 $stampv"
  # A later -ldflags in the extra flags replaces this one.
  GOBIN=$CACHE_DIR/go/gobin go install -trimpath -ldflags "-s -w" "${@:5}" "$3@$modv"
  cp "$CACHE_DIR/go/gobin/$(basename "${3}")" "$BIN_DIR/$1"
  stamp "$1" "$stampv"
}

# The real node's pause image (the pod sandbox), from tests/testbed/pause, as an OCI archive
# for containerd to import: no registry needed.
build_pause_image() {
  local v
  v=$(cat "$TESTBED_DIR/pause/main.go" "$TESTBED_DIR/pause/go.mod" | sha256sum | cut -c1-16)
  is_current pause "$v" && [ -f "$PAUSE_ARCHIVE" ] && return 0
  log "building the pause image $PAUSE_IMAGE"
  (cd "$TESTBED_DIR/pause" && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/pause" .)
  local buildah=(buildah --root "$CACHE_DIR/buildah/storage" --runroot "$CACHE_DIR/buildah/run" --storage-driver vfs)
  local c
  c=$("${buildah[@]}" from scratch)
  "${buildah[@]}" copy "$c" "$BIN_DIR/pause" /pause >/dev/null
  "${buildah[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  "${buildah[@]}" commit --quiet "$c" "$PAUSE_IMAGE" >/dev/null
  "${buildah[@]}" rm "$c" >/dev/null
  # On a fresh machine nothing has made the cache's images directory yet.
  mkdir -p "$(dirname "$PAUSE_ARCHIVE")"
  rm -f "$PAUSE_ARCHIVE"
  "${buildah[@]}" push --quiet "$PAUSE_IMAGE" "oci-archive:$PAUSE_ARCHIVE:$PAUSE_IMAGE"
  "${buildah[@]}" rmi "$PAUSE_IMAGE" >/dev/null
  stamp pause "$v"
}

build_etcd
build_kubernetes
build_coredns
go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
install_helm
go_install kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
go_install toxiproxy-server "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/server
go_install toxiproxy-cli "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/cli
ctd_tags=(-tags "no_btrfs no_devmapper no_zfs")
go_install containerd "$CONTAINERD_VERSION" github.com/containerd/containerd/v2/cmd/containerd "" "${ctd_tags[@]}"
go_install containerd-shim-runc-v2 "$CONTAINERD_VERSION" github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "" "${ctd_tags[@]}"
go_install ctr "$CONTAINERD_VERSION" github.com/containerd/containerd/v2/cmd/ctr "" "${ctd_tags[@]}"
# runc needs cgo and libseccomp for seccomp profiles (RuntimeDefault).
CGO_ENABLED=1 go_install runc "$RUNC_VERSION" github.com/opencontainers/runc "" -tags seccomp
build_pause_image
