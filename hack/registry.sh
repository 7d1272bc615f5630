#!/usr/bin/env bash
# Runs two local OCI registries for tagpin's tests:
#   127.0.0.1:5443  TLS (test CA) + htpasswd basic auth, deletes enabled
#   127.0.0.1:5080  plain HTTP, no auth (the "mirror")
# Usage: hack/registry.sh start|stop|env
# Each registry's access log (one combined-format line per request) goes to its own file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$TAGPIN_STATE/registry"
PKI="$TAGPIN_STATE/pki"
ENV_FILE="$TAGPIN_STATE/registry.env"
TLS_ADDR=127.0.0.1:5443
MIRROR_ADDR=127.0.0.1:5080
USER_NAME=tagpin

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

start_one() {
  local name="$1" addr="$2"
  if pid_alive "$DIR/$name.pid" docker-registry; then
    return 0
  fi
  port_open "${addr%:*}" "${addr#*:}" && die "$addr is already in use by a process this script did not start"
  # stdout carries the access log, stderr the application log.
  start_daemon "$DIR/$name.pid" "$DIR/$name.log" "$DIR/$name.app.log" \
    /usr/bin/docker-registry serve "$DIR/$name.yml"
}

start() {
  command -v /usr/bin/docker-registry >/dev/null || die "docker-registry missing: run hack/tools.sh"
  mkdir -p "$DIR"
  pki_ca "$PKI" "tagpin test CA"
  pki_cert "$PKI" "$PKI/registry" "/CN=tagpin test registry" serverAuth \
    "IP:127.0.0.1,IP:::1,DNS:localhost"
  if [[ ! -s "$DIR/password" ]]; then
    (umask 077 && openssl rand -hex 16 >"$DIR/password")
  fi
  local password
  password="$(<"$DIR/password")"
  if [[ ! -s "$DIR/htpasswd" ]]; then
    htpasswd -Bbn "$USER_NAME" "$password" >"$DIR/htpasswd"
  fi

  write_config tls "$TLS_ADDR" "  tls:
    certificate: $PKI/registry.pem
    key: $PKI/registry-key.pem
auth:
  htpasswd:
    realm: tagpin-test
    path: $DIR/htpasswd"
  write_config mirror "$MIRROR_ADDR" ""

  start_one tls "$TLS_ADDR"
  start_one mirror "$MIRROR_ADDR"

  cat >"$ENV_FILE" <<EOF
export TAGPIN_REGISTRY='$TLS_ADDR'
export TAGPIN_REGISTRY_CA='$PKI/ca.pem'
export TAGPIN_REGISTRY_USER='$USER_NAME'
export TAGPIN_REGISTRY_PASSWORD='$password'
export TAGPIN_REGISTRY_LOG='$DIR/tls.log'
export TAGPIN_MIRROR='$MIRROR_ADDR'
export TAGPIN_MIRROR_LOG='$DIR/mirror.log'
export TAGPIN_TEST_CA='$PKI/ca.pem'
export TAGPIN_TEST_CA_KEY='$PKI/ca-key.pem'
EOF

  wait_for "the TLS registry on $TLS_ADDR" 30 \
    curl -fsS --cacert "$PKI/ca.pem" -u "$USER_NAME:$password" "https://$TLS_ADDR/v2/" ||
    { tail -n 20 "$DIR/tls.app.log" >&2; exit 1; }
  wait_for "the mirror registry on $MIRROR_ADDR" 30 curl -fsS "http://$MIRROR_ADDR/v2/" ||
    { tail -n 20 "$DIR/mirror.app.log" >&2; exit 1; }
  log "registries ready: https://$TLS_ADDR (user $USER_NAME), http://$MIRROR_ADDR; env in $ENV_FILE"
}

stop() {
  stop_daemon "$DIR/tls.pid" docker-registry
  stop_daemon "$DIR/mirror.pid" docker-registry
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) [[ -s "$ENV_FILE" ]] || die "registry not started: run $0 start"; cat "$ENV_FILE" ;;
  *) die "usage: $0 start|stop|env" ;;
esac
