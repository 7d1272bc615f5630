#!/usr/bin/env bash
# Runs a local Kubernetes control plane for tagpin's tests: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler. Inside the cluster's network namespace
# (hack/netns.sh) the API server also listens on the node address and publishes it as the
# kubernetes Service's endpoint, so Pods on the node (hack/node.sh) reach it; outside, it
# listens on loopback only and Pods stay Pending.
# Usage: hack/control-plane.sh start|stop|env
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# TAGPIN_CP_INSTANCE=2 runs a second control plane beside the first (tests across clusters):
# state in control-plane-2/, env in control-plane-2.env, every port one higher.
INSTANCE="${TAGPIN_CP_INSTANCE:-1}"
[[ "$INSTANCE" =~ ^[1-9]$ ]] || die "TAGPIN_CP_INSTANCE must be 1 to 9, not '$INSTANCE'"
SUFFIX=""
((INSTANCE == 1)) || SUFFIX="-$INSTANCE"
DIR="$TAGPIN_STATE/control-plane$SUFFIX"
PKI="$DIR/pki"
ENV_FILE="$TAGPIN_STATE/control-plane$SUFFIX.env"
ETCD_CLIENT=127.0.0.1:$((23789 + INSTANCE))
ETCD_PEER=127.0.0.1:$((23799 + INSTANCE))
API_PORT=$((6442 + INSTANCE))
API="https://127.0.0.1:$API_PORT"
KCM_PORT=$((10356 + INSTANCE))
SCHEDULER_PORT=$((10358 + INSTANCE))
if in_cluster_netns; then
  BIND=0.0.0.0
  ADVERTISE="$TAGPIN_NODE_IP"
else
  BIND=127.0.0.1
  ADVERTISE=127.0.0.1
fi

# kubeconfig FILE USER_CERT_PREFIX: the admin and control-plane components reach the API
# server on loopback.
kubeconfig() { write_kubeconfig "$1" "$API" "$PKI/ca.pem" "$2"; }

make_pki() {
  pki_ca "$PKI" "tagpin control plane CA"
  pki_cert "$PKI" "$PKI/apiserver" "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:::1,IP:10.96.0.1,IP:$TAGPIN_NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  pki_cert "$PKI" "$PKI/admin" "/O=system:masters/CN=tagpin-admin" clientAuth
  pki_cert "$PKI" "$PKI/controller-manager" "/CN=system:kube-controller-manager" clientAuth
  pki_cert "$PKI" "$PKI/scheduler" "/CN=system:kube-scheduler" clientAuth
  pki_cert "$PKI" "$PKI/apiserver-kubelet-client" "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  if [[ ! -s "$PKI/sa-key.pem" ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa-key.pem" 2>/dev/null
    openssl pkey -in "$PKI/sa-key.pem" -pubout -out "$PKI/sa.pem" 2>/dev/null
    chmod 600 "$PKI/sa-key.pem"
  fi
  kubeconfig "$DIR/kubeconfig" "$PKI/admin"
  kubeconfig "$DIR/controller-manager.kubeconfig" "$PKI/controller-manager"
  kubeconfig "$DIR/scheduler.kubeconfig" "$PKI/scheduler"
}

ensure_port_free() {
  port_open 127.0.0.1 "$1" && die "127.0.0.1:$1 is already in use by a process this script did not start"
  return 0
}

start_etcd() {
  pid_alive "$DIR/etcd.pid" etcd && return 0
  ensure_port_free "${ETCD_CLIENT#*:}"
  ensure_port_free "${ETCD_PEER#*:}"
  start_daemon "$DIR/etcd.pid" "$DIR/etcd.log" "$DIR/etcd.log" \
    /usr/bin/etcd --name tagpin --data-dir "$DIR/etcd-data" \
    --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
    --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
    --initial-cluster "tagpin=http://$ETCD_PEER" --initial-cluster-state new \
    --logger zap --log-outputs stderr --quota-backend-bytes 1073741824
  wait_for "etcd on $ETCD_CLIENT" 30 curl -fsS "http://$ETCD_CLIENT/health" ||
    { tail -n 30 "$DIR/etcd.log" >&2; exit 1; }
}

start_apiserver() {
  pid_alive "$DIR/kube-apiserver.pid" kube-apiserver && return 0
  ensure_port_free "$API_PORT"
  # Outside the cluster's namespace the endpoint reconciler would publish 127.0.0.1 as the
  # kubernetes Service endpoint, which Endpoints validation rejects as loopback; there is no
  # node then, so nothing in-cluster needs it. Inside, it publishes the node address.
  local reconciler=lease
  [[ "$ADVERTISE" != 127.0.0.1 ]] || reconciler=none
  # --enable-aggregator-routing: the API server calls webhooks at their Service's endpoint
  # addresses, so it needs no kube-proxy rules of its own (it runs outside any Pod).
  start_daemon "$DIR/kube-apiserver.pid" "$DIR/kube-apiserver.log" "$DIR/kube-apiserver.log" \
    "$TAGPIN_K8S_BIN/kube-apiserver" \
    --bind-address="$BIND" --advertise-address="$ADVERTISE" --secure-port="$API_PORT" \
    --etcd-servers="http://$ETCD_CLIENT" \
    --tls-cert-file="$PKI/apiserver.pem" --tls-private-key-file="$PKI/apiserver-key.pem" \
    --client-ca-file="$PKI/ca.pem" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI/sa.pem" \
    --service-account-signing-key-file="$PKI/sa-key.pem" \
    --service-cluster-ip-range="$TAGPIN_SERVICE_CIDR" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.pem" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client-key.pem" \
    --kubelet-certificate-authority="$PKI/ca.pem" \
    --kubelet-preferred-address-types=InternalIP \
    --enable-aggregator-routing=true \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodNodeSelector,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --audit-policy-file="$REPO/hack/audit-policy.yaml" \
    --audit-log-path="$DIR/audit.log" --audit-log-format=json --audit-log-mode=blocking \
    --endpoint-reconciler-type="$reconciler" \
    --profiling=false \
    --v=1
  wait_for "kube-apiserver $API/readyz" 120 \
    curl -fsS --cacert "$PKI/ca.pem" --cert "$PKI/admin.pem" --key "$PKI/admin-key.pem" "$API/readyz" ||
    { tail -n 40 "$DIR/kube-apiserver.log" >&2; exit 1; }
}

start_controller_manager() {
  pid_alive "$DIR/kube-controller-manager.pid" kube-controller-manager && return 0
  ensure_port_free "$KCM_PORT"
  start_daemon "$DIR/kube-controller-manager.pid" "$DIR/kube-controller-manager.log" \
    "$DIR/kube-controller-manager.log" \
    "$TAGPIN_K8S_BIN/kube-controller-manager" \
    --kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --use-service-account-credentials \
    --root-ca-file="$PKI/ca.pem" \
    --service-account-private-key-file="$PKI/sa-key.pem" \
    --cluster-signing-cert-file="$PKI/ca.pem" --cluster-signing-key-file="$PKI/ca-key.pem" \
    --controllers='*' \
    --allocate-node-cidrs --cluster-cidr="$TAGPIN_POD_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$TAGPIN_SERVICE_CIDR" \
    --profiling=false \
    --v=1
}

start_scheduler() {
  pid_alive "$DIR/kube-scheduler.pid" kube-scheduler && return 0
  ensure_port_free "$SCHEDULER_PORT"
  start_daemon "$DIR/kube-scheduler.pid" "$DIR/kube-scheduler.log" "$DIR/kube-scheduler.log" \
    "$TAGPIN_K8S_BIN/kube-scheduler" \
    --kubeconfig="$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false \
    --profiling=false \
    --v=1
}

start() {
  [[ -x "$TAGPIN_K8S_BIN/kube-apiserver" ]] || die "kube-apiserver missing: run hack/tools.sh"
  mkdir -p "$DIR"
  make_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  cat >"$ENV_FILE" <<EOF
export KUBECONFIG='$DIR/kubeconfig'
export TAGPIN_AUDIT_LOG='$DIR/audit.log'
export TAGPIN_K8S_CA='$PKI/ca.pem'
export TAGPIN_K8S_API='$API'
EOF
  # The ServiceAccount admission plugin rejects Pods until the default ServiceAccount exists.
  wait_for "the default ServiceAccount (kube-controller-manager)" 120 \
    "$TAGPIN_K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" -n default get serviceaccount default ||
    { tail -n 40 "$DIR/kube-controller-manager.log" >&2; exit 1; }
  log "control plane ready at $API; env in $ENV_FILE"
}

stop() {
  stop_daemon "$DIR/kube-scheduler.pid" kube-scheduler
  stop_daemon "$DIR/kube-controller-manager.pid" kube-controller-manager
  stop_daemon "$DIR/kube-apiserver.pid" kube-apiserver
  stop_daemon "$DIR/etcd.pid" etcd
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) [[ -s "$ENV_FILE" ]] || die "control plane not started: run $0 start"; cat "$ENV_FILE" ;;
  *) die "usage: $0 start|stop|env" ;;
esac
