#!/usr/bin/env bash
# Installs the tools the tagpin tests need; fast and silent when everything is cached.
#   hack/tools.sh        install what is missing
#   hack/tools.sh env    print export lines: eval "$(hack/tools.sh env)"
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

print_env() {
  cat <<EOF
export TAGPIN_CACHE='$TAGPIN_CACHE'
export TAGPIN_K8S_BIN='$TAGPIN_K8S_BIN'
export TAGPIN_NODE_BIN='$TAGPIN_NODE_BIN'
export TAGPIN_BUSYBOX_ARM64='$TAGPIN_BUSYBOX_ARM64'
export TAGPIN_COSIGN_V2='$TAGPIN_COSIGN_V2'
export TAGPIN_COSIGN_V3='$TAGPIN_COSIGN_V3'
export TAGPIN_KUSTOMIZE='$TAGPIN_KUSTOMIZE'
export TAGPIN_OCI_REGISTRY='$TAGPIN_OCI_REGISTRY'
export TAGPIN_CRANE='$TAGPIN_CRANE'
export PATH='$TAGPIN_K8S_BIN:$(dirname "$TAGPIN_COSIGN_V2"):$(dirname "$TAGPIN_KUSTOMIZE")':"\$PATH"
EOF
}

# Debian packages, keyed by a file each one ships.
install_debs() {
  local -A want=(
    [/usr/bin/docker-registry]=docker-registry
    [/usr/bin/etcd]=etcd-server
    [/usr/bin/htpasswd]=apache2-utils
    [/usr/bin/openssl]=openssl
    [/usr/bin/curl]=curl
    [/usr/bin/jq]=jq
    [/usr/sbin/iptables]=iptables
    [/usr/sbin/conntrack]=conntrack
    [/bin/busybox]=busybox-static
    [/usr/include/seccomp.h]=libseccomp-dev
    [/usr/bin/pkg-config]=pkg-config
  )
  local missing=() f
  for f in "${!want[@]}"; do
    [[ -e "$f" ]] || missing+=("${want[$f]}")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Another process (a second checkout, an earlier run) may be building the same output.
wait_other_build() {
  local pattern="$1" deadline=$((SECONDS + 3600))
  while pgrep -f -- "$pattern" >/dev/null; do
    ((SECONDS < deadline)) || die "another build matching '$pattern' is still running after 1h"
    sleep 5
  done
}

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)

have_k8s() {
  local c
  for c in "${K8S_COMMANDS[@]}"; do
    [[ -x "$TAGPIN_K8S_BIN/$c" ]] || return 1
  done
}

build_k8s() {
  have_k8s && return 0
  wait_other_build "go build .*-o $TAGPIN_K8S_BIN"
  have_k8s && return 0
  log "building Kubernetes $K8S_VERSION (${K8S_COMMANDS[*]}); this takes a while once"
  local v="${K8S_VERSION#v}" pkg=k8s.io/component-base/version tmp="$TAGPIN_K8S_BIN.partial"
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=${v%%.*}"
  v="${v#*.}"
  ldflags+=" -X $pkg.gitMinor=${v%%.*} -X $pkg.gitTreeState=clean"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # Build beside the final directory and move it into place, so an interrupted build
  # never leaves binaries that look complete.
  (cd "$REPO/hack/k8s" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags="$ldflags" -o "$tmp/" \
    "${K8S_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}")
  rm -rf "$TAGPIN_K8S_BIN" && mv "$tmp" "$TAGPIN_K8S_BIN"
}

have_node() {
  local c
  for c in containerd containerd-shim-runc-v2 ctr runc bridge host-local loopback portmap; do
    [[ -x "$TAGPIN_NODE_BIN/$c" ]] || return 1
  done
}

# The node's runtime: containerd, its runc shim and ctr; runc (cgo, for its nsenter, and with
# seccomp: containerd gives every Pod sandbox the runtime's default profile); the CNI plugins
# the node's network config names.
build_node() {
  have_node && return 0
  local dir tmp cni=github.com/containernetworking/plugins/plugins
  dir="$(dirname "$TAGPIN_NODE_BIN")"
  tmp="$dir.partial"
  wait_other_build "go install .*containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
  have_node && return 0
  log "building the node runtime: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, CNI plugins $CNI_PLUGINS_VERSION"
  rm -rf "$tmp" && mkdir -p "$tmp/bin"
  (
    cd /tmp
    export GOFLAGS=-buildvcs=false GOBIN="$tmp/bin"
    CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' -tags 'no_btrfs no_devmapper no_zfs' \
      "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
    CGO_ENABLED=1 go install -trimpath -ldflags='-s -w' -tags seccomp \
      "github.com/opencontainers/runc@$RUNC_VERSION"
    CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' \
      "$cni/main/bridge@$CNI_PLUGINS_VERSION" "$cni/main/loopback@$CNI_PLUGINS_VERSION" \
      "$cni/ipam/host-local@$CNI_PLUGINS_VERSION" "$cni/meta/portmap@$CNI_PLUGINS_VERSION"
  )
  # Built beside the final directory and moved into place, so an interrupted build never
  # leaves binaries that look complete.
  rm -rf "$dir" && mv "$tmp" "$dir"
}

install_busybox_arm64() {
  [[ -x "$TAGPIN_BUSYBOX_ARM64" ]] && return 0
  local tmp
  tmp="$(mktemp -d)"
  curl -fsSL -o "$tmp/busybox.deb" "http://deb.debian.org/debian/pool/main/b/busybox/$BUSYBOX_ARM64_DEB" ||
    die "cannot download $BUSYBOX_ARM64_DEB from Debian's pool"
  echo "$BUSYBOX_ARM64_SHA256  $tmp/busybox.deb" | sha256sum -c --quiet - || die "$BUSYBOX_ARM64_DEB: wrong sha256"
  dpkg-deb -x "$tmp/busybox.deb" "$tmp/root"
  mkdir -p "$(dirname "$TAGPIN_BUSYBOX_ARM64")"
  mv "$tmp/root/bin/busybox" "$TAGPIN_BUSYBOX_ARM64"
  rm -rf "$tmp"
}

# go_install PACKAGE VERSION TARGET: `go install PACKAGE@VERSION` from the Go module proxy,
# into TARGET (a directory keyed by the version), once.
go_install() {
  local package="$1" version="$2" target="$3" tmp
  [[ -x "$target" ]] && return 0
  wait_other_build "$package@$version"
  [[ -x "$target" ]] && return 0
  log "building $(basename "$target") $version"
  tmp="$(dirname "$target").partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd /tmp && CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "$package@$version")
  mkdir -p "$(dirname "$target")"
  mv "$tmp/$(basename "$target")" "$target" && rm -rf "$tmp"
}

# install_cosign MODULE_MAJOR VERSION TARGET
install_cosign() { go_install "github.com/sigstore/cosign/$1/cmd/cosign" "$2" "$3"; }

# The registry that serves the OCI 1.1 referrers API (hack/oci-registry; versions pinned in
# its go.mod and go.sum). Small: about ten seconds on a cold Go cache.
build_oci_registry() {
  local target="$TAGPIN_OCI_REGISTRY" tmp
  [[ -x "$target" ]] && return 0
  wait_other_build "go build .*-o $(dirname "$target").partial/"
  [[ -x "$target" ]] && return 0
  log "building the referrers-API test registry (hack/oci-registry)"
  tmp="$(dirname "$target").partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$REPO/hack/oci-registry" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags='-s -w' \
    -o "$tmp/oci-registry" .)
  rm -rf "$(dirname "$target")" && mv "$tmp" "$(dirname "$target")"
}

case "${1:-install}" in
  install)
    command -v go >/dev/null || die "go is required (Go 1.26 or newer)"
    install_debs
    build_k8s
    build_node
    install_busybox_arm64
    install_cosign v2 "$COSIGN_V2_VERSION" "$TAGPIN_COSIGN_V2"
    install_cosign v3 "$COSIGN_V3_VERSION" "$TAGPIN_COSIGN_V3"
    go_install sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" "$TAGPIN_KUSTOMIZE"
    # crane assembles and pushes tagpin's container image (hack/image.sh).
    go_install github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" "$TAGPIN_CRANE"
    build_oci_registry
    ;;
  env) print_env ;;
  *) die "usage: $0 [install|env]" ;;
esac
