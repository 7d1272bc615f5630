# shellcheck shell=bash
# Shared helpers for the tagpin hack/ scripts. Source it; do not execute it.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Runtime state (pids, logs, certs, data) lives in the work tree but is gitignored.
TAGPIN_STATE="${TAGPIN_STATE:-$REPO/.tagpin}"
# Built tools live outside the repo so a fresh clone (CI) reuses them.
TAGPIN_CACHE="${TAGPIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tagpin}"

K8S_VERSION=v1.37.2
COSIGN_V2_VERSION=v2.6.5
COSIGN_V3_VERSION=v3.1.3
# The node: containerd 2.x (kubelet 1.37 needs it), runc and the CNI plugins, built from the
# Go module proxy.
CONTAINERD_VERSION=v2.2.9
RUNC_VERSION=v1.3.4
CNI_PLUGINS_VERSION=v1.9.0
KUSTOMIZE_VERSION=v5.7.1
CRANE_VERSION=v0.22.1

TAGPIN_K8S_BIN="$TAGPIN_CACHE/k8s-$K8S_VERSION/bin"
# The arm64 entries of multi-arch test images carry Debian's arm64 busybox-static (the amd64
# one comes from the installed package): fetched from Debian's pool, checked by hash.
BUSYBOX_ARM64_DEB=busybox-static_1.35.0-4+deb12u1+b1_arm64.deb
BUSYBOX_ARM64_SHA256=732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5
TAGPIN_BUSYBOX_ARM64="$TAGPIN_CACHE/busybox-arm64-${BUSYBOX_ARM64_SHA256:0:12}/busybox"
TAGPIN_NODE_BIN="$TAGPIN_CACHE/node-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION-cni-$CNI_PLUGINS_VERSION/bin"
TAGPIN_COSIGN_V2="$TAGPIN_CACHE/cosign-$COSIGN_V2_VERSION/cosign"
TAGPIN_COSIGN_V3="$TAGPIN_CACHE/cosign-$COSIGN_V3_VERSION/cosign"
TAGPIN_KUSTOMIZE="$TAGPIN_CACHE/kustomize-$KUSTOMIZE_VERSION/kustomize"
TAGPIN_CRANE="$TAGPIN_CACHE/crane-$CRANE_VERSION/crane"
# The referrers-API test registry is built from hack/oci-registry: keyed by its source and
# pinned module versions, so a change to either builds a new binary.
OCI_REGISTRY_KEY="$(cat "$REPO"/hack/oci-registry/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)"
TAGPIN_OCI_REGISTRY="$TAGPIN_CACHE/oci-registry-$OCI_REGISTRY_KEY/oci-registry"

export REPO TAGPIN_STATE TAGPIN_CACHE K8S_VERSION COSIGN_V2_VERSION COSIGN_V3_VERSION KUSTOMIZE_VERSION CRANE_VERSION
export CONTAINERD_VERSION RUNC_VERSION CNI_PLUGINS_VERSION TAGPIN_NODE_BIN TAGPIN_BUSYBOX_ARM64
export TAGPIN_K8S_BIN TAGPIN_COSIGN_V2 TAGPIN_COSIGN_V3 TAGPIN_KUSTOMIZE TAGPIN_CRANE TAGPIN_OCI_REGISTRY

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...: polls CMD until it succeeds or the deadline passes.
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "error: timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# pid_alive PIDFILE [NAME]: true if the pid in PIDFILE runs and its command line mentions NAME.
pid_alive() {
  local pidfile="$1" name="${2:-}" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -z "$name" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

# start_daemon PIDFILE STDOUT_LOG STDERR_LOG CMD...: runs CMD detached in its own session.
start_daemon() {
  local pidfile="$1" out="$2" err="$3"
  shift 3
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$out")" "$(dirname "$err")"
  setsid "$@" </dev/null >>"$out" 2>>"$err" &
  echo "$!" >"$pidfile"
}

# stop_daemon PIDFILE [NAME]: TERM then KILL the process in PIDFILE; removes the pid file.
stop_daemon() {
  local pidfile="$1" name="${2:-}" pid i
  if pid_alive "$pidfile" "$name"; then
    pid="$(<"$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# port_open HOST PORT: true if something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# pki_ca DIR CN: creates DIR/ca.pem and DIR/ca-key.pem once (EC P-256, 10 years).
pki_ca() {
  local dir="$1" cn="$2"
  [[ -s "$dir/ca.pem" && -s "$dir/ca-key.pem" ]] && return 0
  mkdir -p "$dir"
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
    openssl pkcs8 -topk8 -nocrypt -out "$dir/ca-key.pem"
  openssl req -x509 -new -key "$dir/ca-key.pem" -sha256 -days 3650 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$dir/ca.pem" 2>/dev/null
  chmod 600 "$dir/ca-key.pem"
}

# pki_cert CA_DIR OUT_PREFIX SUBJECT USAGE [SANS]: issues OUT_PREFIX.pem/OUT_PREFIX-key.pem once.
# USAGE is serverAuth, clientAuth or "serverAuth,clientAuth"; SANS like "IP:127.0.0.1,DNS:localhost".
pki_cert() {
  local ca="$1" out="$2" subj="$3" usage="$4" sans="${5:-}" ext
  # Issued again when the names it must carry changed (a state dir from an older checkout).
  [[ -s "$out.pem" && -s "$out-key.pem" && "$(cat "$out.sans" 2>/dev/null)" == "$sans" ]] && return 0
  mkdir -p "$(dirname "$out")"
  ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    echo "authorityKeyIdentifier=keyid"
    [[ -z "$sans" ]] || echo "subjectAltName=$sans"
  } >"$ext"
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
    openssl pkcs8 -topk8 -nocrypt -out "$out-key.pem"
  openssl req -new -key "$out-key.pem" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial \
      -days 3650 -sha256 -extfile "$ext" -out "$out.pem" 2>/dev/null
  rm -f "$ext"
  chmod 600 "$out-key.pem"
  printf '%s' "$sans" >"$out.sans"
}

# write_kubeconfig FILE SERVER CA_PEM CERT_PREFIX: a kubeconfig for SERVER with the CA and the
# client certificate CERT_PREFIX.pem / CERT_PREFIX-key.pem embedded; readable by its owner only.
write_kubeconfig() {
  local file="$1" server="$2" ca="$3" cert="$4"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tagpin
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$ca")
users:
- name: tagpin
  user:
    client-certificate-data: $(base64 -w0 <"$cert.pem")
    client-key-data: $(base64 -w0 <"$cert-key.pem")
contexts:
- name: tagpin
  context:
    cluster: tagpin
    user: tagpin
current-context: tagpin
EOF
  chmod 600 "$file"
}

# Puts rustup's cargo and the Go toolchain on PATH, for shells that did not.
use_toolchains() {
  local d
  for d in "$HOME/.cargo/bin" /usr/local/go/bin; do
    [[ -d "$d" && ":$PATH:" != *":$d:"* ]] && PATH="$d:$PATH"
  done
  export PATH
}

# The local cluster runs inside its own network namespace (hack/netns.sh): its loopback, the
# node's address and the Pod bridge exist only there, so nothing it serves or sends reaches
# the machine's own interfaces.
TAGPIN_NETNS="${TAGPIN_NETNS:-tagpin}"
# The node's address inside that namespace: the API server advertises it, the kubelet
# serves on it, and Pods reach the registry through it.
TAGPIN_NODE_IP=10.200.0.1
TAGPIN_POD_CIDR=10.88.0.0/16
TAGPIN_SERVICE_CIDR=10.96.0.0/16
export TAGPIN_NETNS TAGPIN_NODE_IP TAGPIN_POD_CIDR TAGPIN_SERVICE_CIDR

# in_cluster_netns: true when this process runs inside the local cluster's network namespace.
in_cluster_netns() {
  [[ -e "/run/netns/$TAGPIN_NETNS" ]] &&
    [[ "$(stat -L -c %i /proc/self/ns/net)" == "$(stat -L -c %i "/run/netns/$TAGPIN_NETNS")" ]]
}
