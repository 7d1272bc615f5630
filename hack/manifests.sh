#!/usr/bin/env bash
# Checks and applies tagpin's kustomize manifests against the local control plane.
#   hack/manifests.sh check                     render every overlay; server-side dry-run of the base
#                                                and of the optional drift watch
#   hack/manifests.sh local-webhook CA_PEM [URL] apply manifests/overlays/local-url with CA_PEM as caBundle
#   hack/manifests.sh local-webhook-delete       remove the webhook configuration again
#   hack/manifests.sh sa-kubeconfig [FILE]       kubeconfig for ServiceAccount tagpin-system/tagpin
#                                                (only the ClusterRole's rights); prints its path
# Needs KUBECONFIG (hack/control-plane.sh env) for everything but rendering.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECTL="$TAGPIN_K8S_BIN/kubectl"
[[ -x "$KUBECTL" ]] || die "kubectl missing: run hack/tools.sh"
M="$REPO/manifests"

check() {
  local k
  for k in base overlays/cert-manager overlays/self-signed overlays/local-url overlays/drift-watch; do
    "$KUBECTL" kustomize "$M/$k" >/dev/null || die "manifests/$k does not render"
  done
  [[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG unset: source \$TAGPIN_STATE/control-plane.env"
  # Server-side dry-run cannot see a Namespace it only pretended to create, so the
  # namespace is created for real first; it is harmless and the local-url overlay uses it too.
  "$KUBECTL" apply -f "$M/base/namespace.yaml" >/dev/null
  "$KUBECTL" apply --dry-run=server -k "$M/base" >/dev/null ||
    die "the API server rejects manifests/base"
  "$KUBECTL" apply --dry-run=server -k "$M/overlays/drift-watch" >/dev/null ||
    die "the API server rejects manifests/components/drift-watch"
  log "manifests render; the API server accepts manifests/base"
}

local_webhook() {
  local ca="${1:?usage: $0 local-webhook CA_PEM [URL]}" url="${2:-https://127.0.0.1:8443/mutate}"
  [[ -s "$ca" ]] || die "no CA certificate at $ca"
  "$KUBECTL" kustomize "$M/overlays/local-url" |
    sed -e "s|REPLACE_WITH_BASE64_CA_PEM|$(base64 -w0 <"$ca")|" \
      -e "s|https://127.0.0.1:8443/mutate|$url|" |
    "$KUBECTL" apply -f - >/dev/null
  log "applied manifests/overlays/local-url (webhook -> $url)"
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
