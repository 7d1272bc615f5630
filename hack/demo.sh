#!/usr/bin/env bash
# tagpin end to end on this machine: a real API server calls tagpin, which pins a
# Deployment written with tags to signed digests and denies an unsigned image.
#   hack/demo.sh        set everything up (idempotent) and show what the API server stored
#   hack/demo.sh stop   stop tagpin, remove its webhook, stop the control plane and registry
#
# tagpin runs as a local process on 127.0.0.1:8443 (the local control plane has no kubelet)
# and is registered with manifests/overlays/local-url. Because the control plane is shared
# with the e2e suite, the demo's webhook only serves namespaces labelled tagpin.dev/demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

use_toolchains

DEMO="$TAGPIN_STATE/demo"
NS=tagpin-demo
ADDR=127.0.0.1:8443
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/debug"
TAGPIN="$TARGET/tagpin"
KUBECTL="$TAGPIN_K8S_BIN/kubectl"

if [[ -t 1 ]]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

stop() {
  if [[ -s "$TAGPIN_STATE/control-plane.env" && -x "$KUBECTL" ]]; then
    source "$TAGPIN_STATE/control-plane.env"
    if "$KUBECTL" get --raw /readyz >/dev/null 2>&1; then
      # Without tagpin the webhook (failurePolicy Fail) would reject every create in its namespaces.
      "$KUBECTL" delete mutatingwebhookconfiguration tagpin --ignore-not-found >/dev/null
      "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null
    fi
  fi
  stop_daemon "$DEMO/tagpin.pid" tagpin
  hack/control-plane.sh stop
  hack/registry.sh stop
  log "stopped tagpin, the control plane and the registry"
}

if [[ "${1:-}" == stop ]]; then
  stop
  exit 0
fi
[[ -z "${1:-}" ]] || die "usage: $0 [stop]"

say "tools, registry, control plane"
hack/tools.sh
eval "$(hack/tools.sh env)"
hack/registry.sh start
hack/control-plane.sh start
source "$TAGPIN_STATE/registry.env"
source "$TAGPIN_STATE/control-plane.env"
COSIGN="$TAGPIN_COSIGN_V2"

say "build tagpin"
cargo build -p tagpin --bin tagpin
cargo build -p tagpin-e2e --bin push-sample

mkdir -p "$DEMO"
[[ -s "$DEMO/tls/tls.crt" ]] ||
  "$TAGPIN" certs --out "$DEMO/tls" --ip 127.0.0.1 --dns-name localhost >/dev/null
[[ -s "$DEMO/cosign.key" ]] ||
  COSIGN_PASSWORD='' "$COSIGN" generate-key-pair --output-key-prefix "$DEMO/cosign" >/dev/null 2>&1
(
  umask 077
  mkdir -p "$DEMO/docker"
  auth="$(printf '%s:%s' "$TAGPIN_REGISTRY_USER" "$TAGPIN_REGISTRY_PASSWORD" | base64 -w0)"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$TAGPIN_REGISTRY" "$auth" >"$DEMO/docker/config.json"
)
cat >"$DEMO/tagpin.yaml" <<EOF
# The demo's tagpin: enforce everywhere; images of $TAGPIN_REGISTRY/demo/ must carry a
# signature of the demo's cosign key; anything else is denied.
defaultMode: enforce
server:
  address: $ADDR
  certFile: $DEMO/tls/tls.crt
  keyFile: $DEMO/tls/tls.key
resolver:
  registries:
    "$TAGPIN_REGISTRY":
      ca: $TAGPIN_REGISTRY_CA
  dockerConfig: $DEMO/docker/config.json
verification:
  noMatch: deny
  rules:
    - name: demo-signed
      images: ["$TAGPIN_REGISTRY/demo/**"]
      signatures:
        anyOf:
          - name: demo-key
            key: {file: $DEMO/cosign.pub}
            # Signed offline: no transparency log on this machine.
            tlog: waived
EOF

say "tagpin serve on https://$ADDR"
stop_daemon "$DEMO/tagpin.pid" tagpin
port_open "${ADDR%:*}" "${ADDR#*:}" && die "$ADDR is in use by a process this script did not start"
: >"$DEMO/tagpin.log"
start_daemon "$DEMO/tagpin.pid" "$DEMO/tagpin.out" "$DEMO/tagpin.log" \
  "$TAGPIN" serve --config "$DEMO/tagpin.yaml"
wait_for "tagpin /readyz" 60 curl -fsS --cacert "$DEMO/tls/ca.crt" "https://$ADDR/readyz" ||
  { tail -n 20 "$DEMO/tagpin.log" >&2; exit 1; }
log "tagpin ready (log: $DEMO/tagpin.log)"

say "register the webhook (manifests/overlays/local-url)"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" label namespace "$NS" tagpin.dev/demo=true --overwrite >/dev/null
hack/manifests.sh local-webhook "$DEMO/tls/ca.crt" "https://$ADDR/mutate"
keys="$("$KUBECTL" get mutatingwebhookconfiguration tagpin \
  -o jsonpath='{.webhooks[0].namespaceSelector.matchExpressions[*].key}')"
if [[ " $keys " != *" tagpin.dev/demo "* ]]; then
  "$KUBECTL" patch mutatingwebhookconfiguration tagpin --type=json -p \
    '[{"op":"add","path":"/webhooks/0/namespaceSelector/matchExpressions/-","value":{"key":"tagpin.dev/demo","operator":"Exists"}}]' \
    >/dev/null
fi
# The API server picks up a new webhook configuration within a moment; wait until a
# dry-run Pod is answered by tagpin.
probe() {
  local out
  out="$(printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe"},"spec":{"containers":[{"name":"c","image":"PROBE:invalid"}]}}' |
    "$KUBECTL" -n "$NS" create --dry-run=server -o name -f - 2>&1)" || true
  [[ "$out" == *"tagpin denied"* ]]
}
wait_for "the API server to call tagpin" 30 probe

say "push and sign $TAGPIN_REGISTRY/demo/hello:1.0; push $TAGPIN_REGISTRY/demo/unsigned:1.0"
signed="$("$TARGET/push-sample" demo/hello 1.0 hello-1.0)"
"$TARGET/push-sample" demo/unsigned 1.0 unsigned-1.0 >/dev/null
# cosign trusts the registry's CA through SSL_CERT_FILE and logs in with the demo's docker config.
COSIGN_PASSWORD='' DOCKER_CONFIG="$DEMO/docker" SSL_CERT_FILE="$TAGPIN_REGISTRY_CA" \
  "$COSIGN" sign --yes --key "$DEMO/cosign.key" --tlog-upload=false \
  "$TAGPIN_REGISTRY/demo/hello@${signed##*@}" >"$DEMO/cosign.log" 2>&1 ||
  { cat "$DEMO/cosign.log" >&2; die "cosign sign failed"; }
echo "pushed and signed: $signed"

say "kubectl apply a Deployment written with tags"
cat <<EOF | tee "$DEMO/deployment.yaml"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: $NS
spec:
  replicas: 2
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
        - name: hello
          image: $TAGPIN_REGISTRY/demo/hello:1.0
EOF
"$KUBECTL" apply -f "$DEMO/deployment.yaml"

say "what the API server stored"
echo "Deployment image: $("$KUBECTL" -n "$NS" get deployment hello -o jsonpath='{.spec.template.spec.containers[0].image}')"
pods_ready() { [[ "$("$KUBECTL" -n "$NS" get pods -l app=hello -o name | wc -l)" -ge 2 ]]; }
wait_for "the Deployment's Pods" 60 pods_ready
"$KUBECTL" -n "$NS" get pods -l app=hello -o custom-columns='POD:.metadata.name,IMAGE:.spec.containers[0].image'

say "the tagpin.dev/images annotation, as an auditor reads it"
"$KUBECTL" -n "$NS" get deployment hello -o jsonpath='{.metadata.annotations.tagpin\.dev/images}' | jq .
audit_line() {
  jq -c --arg ns "$NS" 'select(.objectRef.resource == "deployments" and .objectRef.namespace == $ns
      and .objectRef.name == "hello" and (.annotations["pin.tagpin.dev/images"] // "") != "")
    | {verb, user: .user.username, mode: .annotations["pin.tagpin.dev/mode"],
       images: (.annotations["pin.tagpin.dev/images"] | fromjson)}' \
    "$TAGPIN_AUDIT_LOG" 2>/dev/null | tail -n 1
}
audit_present() { [[ -n "$(audit_line)" ]]; }
wait_for "the Deployment's audit event" 30 audit_present
echo "API server audit log ($TAGPIN_AUDIT_LOG), annotations pin.tagpin.dev/*:"
audit_line | jq .

say "an unsigned image is denied"
echo "\$ kubectl -n $NS run unsigned --image=$TAGPIN_REGISTRY/demo/unsigned:1.0"
if "$KUBECTL" -n "$NS" run unsigned --image="$TAGPIN_REGISTRY/demo/unsigned:1.0" --restart=Never 2>&1; then
  "$KUBECTL" -n "$NS" delete pod unsigned --wait=false >/dev/null
  die "tagpin admitted an unsigned image"
fi

cat <<MSG

tagpin is running (pid $(<"$DEMO/tagpin.pid"), config $DEMO/tagpin.yaml, log $DEMO/tagpin.log).
Try it:   source $TAGPIN_STATE/control-plane.env; eval "\$(hack/tools.sh env)"
          kubectl -n $NS get deployment hello -o yaml
          kubectl -n $NS create deployment other --image=$TAGPIN_REGISTRY/demo/unsigned:1.0   # denied
          $TAGPIN verify --config $DEMO/tagpin.yaml $TAGPIN_REGISTRY/demo/hello:1.0
Stop:     hack/demo.sh stop
MSG
