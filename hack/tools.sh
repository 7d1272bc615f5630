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
export TAGPIN_COSIGN_V2='$TAGPIN_COSIGN_V2'
export TAGPIN_COSIGN_V3='$TAGPIN_COSIGN_V3'
export TAGPIN_OCI_REGISTRY='$TAGPIN_OCI_REGISTRY'
export TAGPIN_CRANE='$TAGPIN_CRANE'
export PATH='$TAGPIN_K8S_BIN:$(dirname "$TAGPIN_COSIGN_V2")':"\$PATH"
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
  )
  local missing=() f
  for f in "${!want[@]}"; do
    [[ -x "$f" ]] || missing+=("${want[$f]}")
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

have_k8s() {
  [[ -x "$TAGPIN_K8S_BIN/kube-apiserver" && -x "$TAGPIN_K8S_BIN/kube-controller-manager" && -x "$TAGPIN_K8S_BIN/kubectl" ]]
}

build_k8s() {
  have_k8s && return 0
  wait_other_build "go build .*-o $TAGPIN_K8S_BIN"
  have_k8s && return 0
  log "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kubectl); this takes a while once"
  local v="${K8S_VERSION#v}" pkg=k8s.io/component-base/version tmp="$TAGPIN_K8S_BIN.partial"
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=${v%%.*}"
  v="${v#*.}"
  ldflags+=" -X $pkg.gitMinor=${v%%.*} -X $pkg.gitTreeState=clean"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # Build beside the final directory and move it into place, so an interrupted build
  # never leaves binaries that look complete.
  (cd "$REPO/hack/k8s" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags="$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)
  rm -rf "$TAGPIN_K8S_BIN" && mv "$tmp" "$TAGPIN_K8S_BIN"
}

# install_go_binary PACKAGE VERSION TARGET: `go install PACKAGE@VERSION` from the Go module
# proxy into TARGET, built beside it and moved into place.
install_go_binary() {
  local package="$1" version="$2" target="$3" tmp
  [[ -x "$target" ]] && return 0
  wait_other_build "$package@$version"
  [[ -x "$target" ]] && return 0
  log "building $(basename "$package") $version"
  tmp="$(dirname "$target").partial"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd /tmp && CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "$package@$version")
  mkdir -p "$(dirname "$target")"
  mv "$tmp/$(basename "$package")" "$target" && rm -rf "$tmp"
}

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
    install_go_binary github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_V2_VERSION" "$TAGPIN_COSIGN_V2"
    install_go_binary github.com/sigstore/cosign/v3/cmd/cosign "$COSIGN_V3_VERSION" "$TAGPIN_COSIGN_V3"
    # crane assembles and pushes tagpin's container image (hack/image.sh).
    install_go_binary github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION" "$TAGPIN_CRANE"
    build_oci_registry
    ;;
  env) print_env ;;
  *) die "usage: $0 [install|env]" ;;
esac
