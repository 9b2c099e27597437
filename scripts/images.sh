#!/usr/bin/env bash
# make images: builds the bridge-runtime and mkb-operator container images without a Docker
# engine, with buildah (installed from Debian if missing; vfs storage in the cache, so no
# kernel overlay or daemon is needed), and writes them as OCI archives:
#   target/images/bridge-runtime-<version>.tar   ghcr.io/mqtt-kafka-bridge/bridge-runtime:<version>
#   target/images/mkb-operator-<version>.tar     ghcr.io/mqtt-kafka-bridge/mkb-operator:<version>
# Each image is FROM scratch: the release binary, the shared libraries ldd finds for it, CA
# certificates, and a passwd entry for the non-root user 65532. Before packing, each staged
# root file system is checked by running the binary in it (chroot) with nothing else. When the
# test bed's real node runs, the archives are loaded into its containerd.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR=${MKB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mqtt-kafka-bridge}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/cargo-target}
REGISTRY=${MKB_IMAGE_REGISTRY:-ghcr.io/mqtt-kafka-bridge}
OUT=target/images
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say() { printf '[images] %s\n' "$*"; }

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
if ! command -v buildah >/dev/null; then
  say "installing buildah (Debian package)"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
BUILDAH=(buildah --root "$CACHE_DIR/buildah/storage" --runroot "$CACHE_DIR/buildah/run" --storage-driver vfs)
if [ "$(id -u)" -ne 0 ]; then
  BUILDAH=(buildah unshare "${BUILDAH[@]}")
fi

say "building release binaries"
cargo build --release --locked -p bridge-runtime -p mkb-operator
mkdir -p "$OUT"

# Stages rootfs/ for one binary under $1 (the build context).
stage() {
  local context=$1 binary=$2 rootfs=$1/rootfs lib
  rm -rf "$context"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs"
  # Debug line tables stay in the cached build; the image gets the stripped binary.
  objcopy --strip-debug "$CARGO_TARGET_DIR/release/$binary" "$rootfs/usr/local/bin/$binary"
  for lib in $(ldd "$CARGO_TARGET_DIR/release/$binary" | grep -oE '/[^ ]+'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  if [ "$(id -u)" -eq 0 ]; then
    chroot --userspec=65532:65532 "$rootfs" "/usr/local/bin/$binary" --version >/dev/null ||
      { say "$binary does not run in its image's file system"; exit 1; }
  fi
}

for name in bridge-runtime mkb-operator; do
  case $name in
    bridge-runtime) containerfile=bridge-runtime/Containerfile ;;
    mkb-operator) containerfile=operator/Containerfile ;;
  esac
  image=$REGISTRY/$name:$VERSION
  context=$CACHE_DIR/images/$name
  say "staging $name"
  stage "$context" "$name"
  say "building $image"
  "${BUILDAH[@]}" bud --quiet --isolation chroot --layers=false \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
    -f "$containerfile" -t "$image" "$context" >/dev/null
  archive=$OUT/$name-$VERSION.tar
  rm -f "$archive"
  "${BUILDAH[@]}" push --quiet "$image" "oci-archive:$archive:$image"
  "${BUILDAH[@]}" rmi "$image" >/dev/null
  say "wrote $archive ($(du -h "$archive" | cut -f1)): $image"
done
# The test bed's real node (when it runs) takes its images from containerd's store.
tests/testbed/import-images.sh
