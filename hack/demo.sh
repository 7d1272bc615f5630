#!/usr/bin/env bash
# tagpin end to end on this machine, installed the way a cluster operator installs it: a
# local cluster with a real node, tagpin's own image pinned by digest, `kubectl apply -k`.
# A Deployment written with tags is stored pinned to signed digests, its Pods run those
# digests, and an unsigned image is denied.
#   hack/demo.sh         set everything up (idempotent) and show what runs
#   hack/demo.sh shell   a shell in the demo cluster's network namespace, kubectl ready
#   hack/demo.sh stop    stop the demo cluster (its state stays for the next start)
#
# The demo cluster is its own: network namespace $TAGPIN_NETNS (default tagpin-demo) and state
# under $TAGPIN_STATE/demo, so it runs beside the test suite's cluster.
set -euo pipefail
export TAGPIN_NETNS="${TAGPIN_DEMO_NETNS:-tagpin-demo}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
use_toolchains

# The demo's cluster state; the caller's TAGPIN_STATE is kept for the tools' build cache only.
if [[ -z "${TAGPIN_DEMO_STATE:-}" ]]; then
  export TAGPIN_DEMO_STATE="$TAGPIN_STATE/demo"
fi
export TAGPIN_STATE="$TAGPIN_DEMO_STATE"
DEMO="$TAGPIN_STATE/demo"
NS=default
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/debug"
TAGPIN="$TARGET/tagpin"

if [[ -t 1 ]]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

case "${1:-}" in
  stop)
    if [[ -e "/run/netns/$TAGPIN_NETNS" ]]; then
      hack/netns.sh exec hack/cluster.sh stop
    fi
    log "stopped the demo cluster (state kept in $TAGPIN_STATE; start again with hack/demo.sh)"
    exit 0
    ;;
  shell)
    exec hack/netns.sh shell
    ;;
  "" | --in-netns) ;;
  *) die "usage: $0 [stop|shell]" ;;
esac

if [[ "${1:-}" != --in-netns ]]; then
  say "tools and builds (outside the cluster: they download)"
  hack/tools.sh
  cargo fetch --locked >/dev/null
  cargo build -p tagpin --bin tagpin
  cargo build -p tagpin-e2e --bin push-sample
  hack/image.sh prepare
  exec hack/netns.sh exec "$0" --in-netns
fi

eval "$(hack/tools.sh env)"
KUBECTL="$TAGPIN_K8S_BIN/kubectl"
COSIGN="$TAGPIN_COSIGN_V2"

say "the local cluster: registry, control plane, node, tagpin's image (network namespace $TAGPIN_NETNS)"
hack/cluster.sh start
source "$TAGPIN_STATE/registry.env"
source "$TAGPIN_STATE/control-plane.env"
source "$TAGPIN_STATE/image.env"
REGISTRY="$TAGPIN_NODE_REGISTRY"
echo "tagpin's image: $TAGPIN_IMAGE"

mkdir -p "$DEMO"
[[ -s "$DEMO/cosign.key" ]] ||
  COSIGN_PASSWORD='' "$COSIGN" generate-key-pair --output-key-prefix "$DEMO/cosign" >/dev/null 2>&1
(
  umask 077
  mkdir -p "$DEMO/docker"
  auth="$(printf '%s:%s' "$TAGPIN_REGISTRY_USER" "$TAGPIN_REGISTRY_PASSWORD" | base64 -w0)"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$auth" >"$DEMO/docker/config.json"
)

say "install tagpin: hack/install-overlay.sh (tagpin certs --kustomize, image by digest) + the demo's policy"
TAGPIN_IMAGE="$REGISTRY/${TAGPIN_IMAGE#"$TAGPIN_REGISTRY"/}" \
  TAGPIN_INSTALL_DIR="$DEMO/install/base" TAGPIN_BIN="$TAGPIN" hack/install-overlay.sh >/dev/null
cp "$TAGPIN_REGISTRY_CA" "$DEMO/install/registry-ca.pem"
cp "$DEMO/cosign.pub" "$DEMO/install/cosign.pub"
cat >"$DEMO/install/config.yaml" <<EOF
# The demo's tagpin: enforce in every namespace the webhook sends (all but tagpin-system and
# kube-system); images under $REGISTRY/demo/ must carry a signature of the demo's cosign key;
# any other image is denied.
defaultMode: enforce
resolver:
  registries:
    "$REGISTRY":
      ca: /etc/tagpin/registry-ca.pem
verification:
  noMatch: deny
  rules:
    - name: demo-signed
      images: ["$REGISTRY/demo/**"]
      signatures:
        anyOf:
          - name: demo-key
            key: {file: /etc/tagpin/cosign.pub}
            # Signed offline: no transparency log on this machine.
            tlog: waived
EOF
cat >"$DEMO/install/kustomization.yaml" <<'EOF'
# The README's self-signed install (base/, written by hack/install-overlay.sh) with the demo's
# policy, its cosign key and the local registry's CA in tagpin's ConfigMap.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - base
configMapGenerator:
  - name: tagpin-config
    namespace: tagpin-system
    behavior: replace
    files:
      - config.yaml
      - registry-ca.pem
      - cosign.pub
patches:
  - target:
      kind: Deployment
      name: tagpin
    patch: |-
      - op: add
        path: /spec/template/spec/volumes/0/projected/sources/0/configMap/items/-
        value: {key: registry-ca.pem, path: registry-ca.pem}
      - op: add
        path: /spec/template/spec/volumes/0/projected/sources/0/configMap/items/-
        value: {key: cosign.pub, path: cosign.pub}
EOF
"$KUBECTL" apply --server-side --force-conflicts -k "$DEMO/install" >/dev/null
"$KUBECTL" -n tagpin-system rollout status deployment/tagpin --timeout=300s
# The API server picks up a new webhook configuration within a moment: wait until a dry-run
# Pod in the default namespace is answered by tagpin.
probe() {
  local out
  out="$(printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probe"},"spec":{"containers":[{"name":"c","image":"PROBE:invalid"}]}}' |
    "$KUBECTL" -n "$NS" create --dry-run=server -o name -f - 2>&1)" || true
  [[ "$out" == *"tagpin denied"* ]]
}
wait_for "the API server to call tagpin through its Service" 120 probe ||
  { "$KUBECTL" -n tagpin-system logs deployment/tagpin --tail=20 >&2; exit 1; }
"$KUBECTL" -n tagpin-system get pods -o wide

say "push and sign $REGISTRY/demo/hello:1.0; push $REGISTRY/demo/unsigned:1.0"
signed="$("$TARGET/push-sample" --runnable demo/hello 1.0 hello-1.0)"
"$TARGET/push-sample" --runnable demo/unsigned 1.0 unsigned-1.0 >/dev/null
# cosign trusts the registry's CA through SSL_CERT_FILE and logs in with the demo's docker config.
COSIGN_PASSWORD='' DOCKER_CONFIG="$DEMO/docker" SSL_CERT_FILE="$TAGPIN_REGISTRY_CA" \
  "$COSIGN" sign --yes --key "$DEMO/cosign.key" --tlog-upload=false \
  "$REGISTRY/demo/hello@${signed##*@}" >"$DEMO/cosign.log" 2>&1 ||
  { cat "$DEMO/cosign.log" >&2; die "cosign sign failed"; }
echo "pushed and signed: $signed"

say "the registry is private: a pull secret for the default ServiceAccount (tagpin and the kubelet use it)"
"$KUBECTL" -n "$NS" create secret generic registry --type=kubernetes.io/dockerconfigjson \
  --from-file=.dockerconfigjson="$DEMO/docker/config.json" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" -n "$NS" patch serviceaccount default -p '{"imagePullSecrets":[{"name":"registry"}]}' >/dev/null
echo "secret/registry, named in serviceaccount/default's imagePullSecrets"

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
      terminationGracePeriodSeconds: 2
      containers:
        - name: hello
          image: $REGISTRY/demo/hello:1.0
EOF
"$KUBECTL" apply -f "$DEMO/deployment.yaml"

say "what the API server stored, and what the kubelet runs"
echo "Deployment image: $("$KUBECTL" -n "$NS" get deployment hello -o jsonpath='{.spec.template.spec.containers[0].image}')"
"$KUBECTL" -n "$NS" rollout status deployment/hello --timeout=180s
"$KUBECTL" -n "$NS" get pods -l app=hello \
  -o custom-columns='POD:.metadata.name,STATUS:.status.phase,IMAGE:.spec.containers[0].image,RUNNING (imageID):.status.containerStatuses[0].imageID'
running="$("$KUBECTL" -n "$NS" get pods -l app=hello -o jsonpath='{range .items[*]}{.status.containerStatuses[0].imageID}{"\n"}{end}' | sort -u)"
[[ "$running" == *"@${signed##*@}" ]] || die "the kubelet runs '$running', not the pinned ${signed##*@}"

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
echo "\$ kubectl run unsigned --image=$REGISTRY/demo/unsigned:1.0"
if "$KUBECTL" -n "$NS" run unsigned --image="$REGISTRY/demo/unsigned:1.0" --restart=Never 2>&1; then
  "$KUBECTL" -n "$NS" delete pod unsigned --wait=false >/dev/null
  die "tagpin admitted an unsigned image"
fi

cat <<MSG

Where tagpin acts: every namespace except tagpin-system and kube-system (the default one and
any you create), in enforce mode. Its policy: images under $REGISTRY/demo/ must be signed
with the demo's key; anything else is denied (this machine reaches no public registry).
Try it:   hack/demo.sh shell          # a shell inside the demo cluster, kubectl ready
          kubectl run hi --image=$REGISTRY/demo/hello:1.0      # stored pinned, runs
          kubectl get pod hi -o jsonpath='{.spec.containers[0].image}'
          kubectl create deployment web --image=$REGISTRY/demo/unsigned:1.0   # denied: not signed
          kubectl create namespace team   # tagpin acts there too; give it the pull secret to pull
          kubectl -n tagpin-system logs deployment/tagpin
Stop:     hack/demo.sh stop
MSG
