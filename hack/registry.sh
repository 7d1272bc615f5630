#!/usr/bin/env bash
# Runs three local OCI registries for tagpin's tests:
#   127.0.0.1:5443  distribution 2.8 (Debian's docker-registry): TLS (test CA) + htpasswd
#                   basic auth, deletes enabled; no referrers API (cosign falls back to tags)
#   127.0.0.1:5080  distribution 2.8, plain HTTP, no auth (the "mirror")
#   127.0.0.1:5444  hack/oci-registry: the OCI 1.1 referrers API, TLS + the same htpasswd;
#                   content in memory
# Usage: hack/registry.sh start|stop|env
# The addresses can be moved with TAGPIN_REGISTRY_ADDR, TAGPIN_MIRROR_ADDR and
# TAGPIN_REFERRERS_REGISTRY_ADDR (a second set beside a running one, with its own TAGPIN_STATE).
# Each registry's access log (one combined-format line per request) goes to its own file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$TAGPIN_STATE/registry"
PKI="$TAGPIN_STATE/pki"
ENV_FILE="$TAGPIN_STATE/registry.env"
TLS_ADDR="${TAGPIN_REGISTRY_ADDR:-127.0.0.1:5443}"
MIRROR_ADDR="${TAGPIN_MIRROR_ADDR:-127.0.0.1:5080}"
REFERRERS_ADDR="${TAGPIN_REFERRERS_REGISTRY_ADDR:-127.0.0.1:5444}"
USER_NAME=tagpin
# Inside the cluster's network namespace the registries also answer on the node address, where
# the kubelet and Pods reach them; outside, on loopback only.
listen() {
  if in_cluster_netns && [[ "${1%:*}" == 127.0.0.1 ]]; then
    echo "0.0.0.0:${1#*:}"
  else
    echo "$1"
  fi
}

write_config() {
  local name="$1" addr="$2" extra="$3"
  mkdir -p "$DIR/$name-data"
  cat >"$DIR/$name.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $DIR/$name-data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
$extra
EOF
}

# start_one NAME ADDR CMD...: starts CMD unless this script's NAME registry already runs.
start_one() {
  local name="$1" addr="$2"
  shift 2
  if pid_alive "$DIR/$name.pid" "$(basename "$1")"; then
    return 0
  fi
  port_open "${addr%:*}" "${addr#*:}" && die "$addr is already in use by a process this script did not start"
  # stdout carries the access log, stderr the application log.
  start_daemon "$DIR/$name.pid" "$DIR/$name.log" "$DIR/$name.app.log" "$@"
}

start() {
  command -v /usr/bin/docker-registry >/dev/null || die "docker-registry missing: run hack/tools.sh"
  [[ -x "$TAGPIN_OCI_REGISTRY" ]] || die "$TAGPIN_OCI_REGISTRY missing: run hack/tools.sh"
  mkdir -p "$DIR"
  pki_ca "$PKI" "tagpin test CA"
  pki_cert "$PKI" "$PKI/registry" "/CN=tagpin test registry" serverAuth \
    "IP:127.0.0.1,IP:::1,IP:$TAGPIN_NODE_IP,DNS:localhost"
  if [[ ! -s "$DIR/password" ]]; then
    (umask 077 && openssl rand -hex 16 >"$DIR/password")
  fi
  local password
  password="$(<"$DIR/password")"
  if [[ ! -s "$DIR/htpasswd" ]]; then
    htpasswd -Bbn "$USER_NAME" "$password" >"$DIR/htpasswd"
  fi

  write_config tls "$(listen "$TLS_ADDR")" "  tls:
    certificate: $PKI/registry.pem
    key: $PKI/registry-key.pem
auth:
  htpasswd:
    realm: tagpin-test
    path: $DIR/htpasswd"
  write_config mirror "$(listen "$MIRROR_ADDR")" ""

  start_one tls "$TLS_ADDR" /usr/bin/docker-registry serve "$DIR/tls.yml"
  start_one mirror "$MIRROR_ADDR" /usr/bin/docker-registry serve "$DIR/mirror.yml"
  start_one referrers "$REFERRERS_ADDR" "$TAGPIN_OCI_REGISTRY" -addr "$(listen "$REFERRERS_ADDR")" \
    -tls-cert "$PKI/registry.pem" -tls-key "$PKI/registry-key.pem" \
    -htpasswd "$DIR/htpasswd" -realm tagpin-test

  cat >"$ENV_FILE" <<EOF
export TAGPIN_REGISTRY='$TLS_ADDR'
export TAGPIN_REGISTRY_CA='$PKI/ca.pem'
export TAGPIN_REGISTRY_USER='$USER_NAME'
export TAGPIN_REGISTRY_PASSWORD='$password'
export TAGPIN_REGISTRY_LOG='$DIR/tls.log'
export TAGPIN_MIRROR='$MIRROR_ADDR'
export TAGPIN_MIRROR_LOG='$DIR/mirror.log'
export TAGPIN_REFERRERS_REGISTRY='$REFERRERS_ADDR'
export TAGPIN_REFERRERS_REGISTRY_LOG='$DIR/referrers.log'
export TAGPIN_TEST_CA='$PKI/ca.pem'
export TAGPIN_TEST_CA_KEY='$PKI/ca-key.pem'
EOF
  if in_cluster_netns; then
    # The same registries as the node and Pods name them.
    cat >>"$ENV_FILE" <<EOF
export TAGPIN_NODE_REGISTRY='$TAGPIN_NODE_IP:${TLS_ADDR#*:}'
export TAGPIN_NODE_MIRROR='$TAGPIN_NODE_IP:${MIRROR_ADDR#*:}'
EOF
  fi

  wait_for "the TLS registry on $TLS_ADDR" 30 \
    curl -fsS --cacert "$PKI/ca.pem" -u "$USER_NAME:$password" "https://$TLS_ADDR/v2/" ||
    { tail -n 20 "$DIR/tls.app.log" >&2; exit 1; }
  wait_for "the mirror registry on $MIRROR_ADDR" 30 curl -fsS "http://$MIRROR_ADDR/v2/" ||
    { tail -n 20 "$DIR/mirror.app.log" >&2; exit 1; }
  wait_for "the referrers-API registry on $REFERRERS_ADDR" 30 \
    curl -fsS --cacert "$PKI/ca.pem" -u "$USER_NAME:$password" "https://$REFERRERS_ADDR/v2/" ||
    { tail -n 20 "$DIR/referrers.app.log" >&2; exit 1; }
  log "registries ready: https://$TLS_ADDR and https://$REFERRERS_ADDR (user $USER_NAME), http://$MIRROR_ADDR; env in $ENV_FILE"
}

stop() {
  stop_daemon "$DIR/tls.pid" docker-registry
  stop_daemon "$DIR/mirror.pid" docker-registry
  stop_daemon "$DIR/referrers.pid" oci-registry
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) [[ -s "$ENV_FILE" ]] || die "registry not started: run $0 start"; cat "$ENV_FILE" ;;
  *) die "usage: $0 start|stop|env" ;;
esac
