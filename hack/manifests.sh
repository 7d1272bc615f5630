#!/usr/bin/env bash
# Checks and applies tagpin's kustomize manifests against the local control plane.
#   hack/manifests.sh check                     render the base and every overlay; check that the
#                                                base, and every component carrying the webhook,
#                                                install no webhook on their own; server-side
#                                                dry-run of the base and of the optional drift watch
#   hack/manifests.sh local-webhook CA_PEM [URL] apply the base with manifests/components/local-url:
#                                                the webhook calls URL (default
#                                                https://127.0.0.1:8443/mutate) trusting CA_PEM,
#                                                through a kustomization written under
#                                                $TAGPIN_STATE/manifests/local-url
#   hack/manifests.sh local-webhook-delete       remove the webhook configuration again
#   hack/manifests.sh sa-kubeconfig [FILE]       kubeconfig for ServiceAccount tagpin-system/tagpin
#                                                (only the ClusterRole's rights); prints its path
# Needs KUBECONFIG (hack/control-plane.sh env) for everything but rendering.
set -euo pipefail
shopt -s inherit_errexit
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECTL="$TAGPIN_K8S_BIN/kubectl"
[[ -x "$KUBECTL" ]] || die "kubectl missing: run hack/tools.sh"
M="$REPO/manifests"

# webhooks KUSTOMIZATION_DIR: how many MutatingWebhookConfigurations it renders.
webhooks() {
  local rendered
  rendered="$("$KUBECTL" kustomize "$1")" || die "${1#"$REPO"/} does not render"
  grep -c '^kind: MutatingWebhookConfiguration$' <<<"$rendered" || true
}

check() {
  local k c
  [[ "$(webhooks "$M/base")" == 0 ]] || die "manifests/base installs a webhook on its own"
  for k in "$M"/overlays/*/; do
    webhooks "$k" >/dev/null
  done
  # A component carrying the fail-closed webhook must not build without the base and its
  # certificate source; the others must carry no webhook.
  for c in "$M"/components/*/; do
    if "$KUBECTL" kustomize "$c" >/dev/null 2>&1; then
      [[ "$(webhooks "$c")" == 0 ]] || die "${c#"$REPO"/} installs a webhook on its own"
    fi
  done
  # The composition local-webhook applies, rendered with a stand-in for the CA.
  mkdir -p "$TAGPIN_STATE/manifests"
  echo "render check" >"$TAGPIN_STATE/manifests/render-check-ca.pem"
  [[ "$(webhooks "$(local_url_dir "$TAGPIN_STATE/manifests/render-check-ca.pem")")" == 1 ]] ||
    die "manifests/components/local-url renders no webhook"
  [[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG unset: source \$TAGPIN_STATE/control-plane.env"
  # Server-side dry-run cannot see a Namespace it only pretended to create, so the
  # namespace is created for real first; it is harmless and the local-url webhook uses it too.
  "$KUBECTL" apply -f "$M/base/namespace.yaml" >/dev/null
  "$KUBECTL" apply --dry-run=server -k "$M/base" >/dev/null ||
    die "the API server rejects manifests/base"
  "$KUBECTL" apply --dry-run=server -k "$M/overlays/drift-watch" >/dev/null ||
    die "the API server rejects manifests/components/drift-watch"
  log "manifests render; no webhook without its certificate source; the API server accepts manifests/base"
}

# local_url_dir CA_PEM [URL]: writes a kustomization of the base with
# manifests/components/local-url, its webhook calling URL and trusting CA_PEM, and prints its
# directory. (Kustomize takes only relative paths to other kustomizations.)
local_url_dir() {
  local ca="$1" url="${2:-https://127.0.0.1:8443/mutate}" dir="$TAGPIN_STATE/manifests/local-url"
  [[ -s "$ca" ]] || die "no CA certificate at $ca"
  mkdir -p "$dir"
  cat >"$dir/kustomization.yaml" <<EOF
# Written by hack/manifests.sh: tagpin as a local process at $url.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$dir" "$M/base")
components:
  - $(realpath --relative-to="$dir" "$M/components/local-url")
patches:
  - target:
      group: admissionregistration.k8s.io
      kind: MutatingWebhookConfiguration
      name: tagpin
    patch: |-
      - op: replace
        path: /webhooks/0/clientConfig/url
        value: $url
      - op: add
        path: /webhooks/0/clientConfig/caBundle
        value: $(base64 -w0 <"$ca")
EOF
  echo "$dir"
}

local_webhook() {
  local ca="${1:?usage: $0 local-webhook CA_PEM [URL]}" url="${2:-https://127.0.0.1:8443/mutate}"
  "$KUBECTL" apply -k "$(local_url_dir "$ca" "$url")" >/dev/null
  log "applied manifests/components/local-url (webhook -> $url)"
}

# Lets a locally running tagpin talk to the API server with exactly the rights the
# manifests grant, so missing RBAC shows up in tests rather than in a cluster.
sa_kubeconfig() {
  local file="${1:-$TAGPIN_STATE/control-plane/tagpin-sa.kubeconfig}" token server ca
  "$KUBECTL" apply -f "$M/base/namespace.yaml" -f "$M/base/serviceaccount.yaml" \
    -f "$M/base/rbac.yaml" >/dev/null
  token="$("$KUBECTL" create token tagpin -n tagpin-system --duration=24h)"
  server="$("$KUBECTL" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$("$KUBECTL" config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  mkdir -p "$(dirname "$file")"
  (
    umask 077
    printf '%s\n' \
      "apiVersion: v1" "kind: Config" \
      "clusters:" "- name: tagpin" "  cluster:" "    server: $server" \
      "    certificate-authority-data: $ca" \
      "users:" "- name: tagpin" "  user:" "    token: $token" \
      "contexts:" "- name: tagpin" "  context:" "    cluster: tagpin" "    user: tagpin" \
      "    namespace: tagpin-system" \
      "current-context: tagpin" >"$file"
  )
  echo "$file"
}

case "${1:-}" in
  check) check ;;
  local-webhook) shift; local_webhook "$@" ;;
  sa-kubeconfig) shift; sa_kubeconfig "$@" ;;
  local-webhook-delete)
    "$KUBECTL" delete mutatingwebhookconfiguration tagpin --ignore-not-found >/dev/null ;;
  *) die "usage: $0 check|local-webhook CA_PEM [URL]|local-webhook-delete|sa-kubeconfig [FILE]" ;;
esac
