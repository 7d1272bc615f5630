#!/usr/bin/env bash
# Writes the kustomization that installs tagpin from the locally built image, pinned by digest,
# without editing a tracked file; prints its directory. Apply it with `kubectl apply -k DIR`.
#   hack/install-overlay.sh
#
# Inputs (environment):
#   TAGPIN_IMAGE             tagpin's image, NAME[:TAG]@sha256:<64 hex> (default: from
#                            $TAGPIN_STATE/image.env, which hack/image.sh writes)
#   TAGPIN_INSTALL_CERTS     self-signed (default): certificates made the way the README tells a
#                            user, `tagpin certs --out DIR/self-signed --kustomize --image ...`;
#                            or cert-manager: manifests/components/cert-manager (needs cert-manager)
#   TAGPIN_INSTALL_COMPONENTS  space-separated names under manifests/components to add, e.g.
#                            drift-watch (default: none)
#   TAGPIN_INSTALL_DIR       where to write (default $TAGPIN_STATE/install); replaced each run,
#                            except DIR/self-signed, whose CA is kept as the previous CA of the
#                            next run's bundle (a re-run rotates the certificates safely)
#   TAGPIN_BIN               the tagpin CLI for `tagpin certs` (default: the debug build in
#                            CARGO_TARGET_DIR or target/, built if missing)
#   $TAGPIN_STATE/registry.env  when the image is on TAGPIN_REGISTRY (or on TAGPIN_NODE_REGISTRY,
#                            its name inside the cluster's namespace) and TAGPIN_REGISTRY_USER is
#                            set, a kubernetes.io/dockerconfigjson Secret `tagpin-pull` with those
#                            credentials is added to tagpin-system and named in the tagpin
#                            ServiceAccount's imagePullSecrets (and tagpin-watch's, with
#                            drift-watch), so the kubelet can pull the image (the node's
#                            runtime must trust TAGPIN_REGISTRY_CA itself)
# Outputs:
#   stdout                   the directory, nothing else
#   DIR/kustomization.yaml   resources: the certificate source (DIR/self-signed, or a relative
#                            path to manifests/base with manifests/components/cert-manager); images: ghcr.io/tagpin/tagpin
#                            -> the image's name and digest; the pull Secret when added
#   DIR/self-signed/         ca.crt, ca-bundle.crt, tls.crt, tls.key, kustomization.yaml
set -euo pipefail
shopt -s inherit_errexit
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
use_toolchains

DIR="${TAGPIN_INSTALL_DIR:-$TAGPIN_STATE/install}"
CERTS="${TAGPIN_INSTALL_CERTS:-self-signed}"
[[ -s "$TAGPIN_STATE/registry.env" ]] && source "$TAGPIN_STATE/registry.env"
if [[ -z "${TAGPIN_IMAGE:-}" && -s "$TAGPIN_STATE/image.env" ]]; then
  source "$TAGPIN_STATE/image.env"
fi
IMAGE="${TAGPIN_IMAGE:-}"
[[ -n "$IMAGE" ]] || die "TAGPIN_IMAGE unset and no $TAGPIN_STATE/image.env: run hack/image.sh"
[[ "$IMAGE" =~ ^([^@]+)@(sha256:[0-9a-f]{64})$ ]] || die "TAGPIN_IMAGE=$IMAGE has no sha256 digest"
DIGEST="${BASH_REMATCH[2]}"
NAME="${BASH_REMATCH[1]}"
# Drop a tag: kustomize's newName is the repository alone.
[[ "${NAME##*/}" == *:* ]] && NAME="${NAME%:*}"

tagpin_bin() {
  if [[ -n "${TAGPIN_BIN:-}" ]]; then
    echo "$TAGPIN_BIN"
    return
  fi
  local bin="${CARGO_TARGET_DIR:-$REPO/target}/debug/tagpin"
  [[ -x "$bin" ]] || cargo build -p tagpin --bin tagpin >&2
  echo "$bin"
}

rel() { realpath --relative-to="$DIR" "$1"; }

mkdir -p "$DIR"
find "$DIR" -mindepth 1 -maxdepth 1 ! -name self-signed -exec rm -rf {} +

case "$CERTS" in
  self-signed)
    "$(tagpin_bin)" certs --out "$DIR/self-signed" --kustomize \
      --manifests "$REPO/manifests" --image "$IMAGE" >/dev/null
    source_dir=self-signed
    ;;
  cert-manager)
    rm -rf "$DIR/self-signed"
    source_dir="$(rel "$REPO/manifests/base")"
    TAGPIN_INSTALL_COMPONENTS="cert-manager ${TAGPIN_INSTALL_COMPONENTS:-}"
    ;;
  *) die "TAGPIN_INSTALL_CERTS=$CERTS: expected self-signed or cert-manager" ;;
esac

{
  echo "# Written by hack/install-overlay.sh: tagpin from $IMAGE ($CERTS certificates)."
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $source_dir"
  if [[ -n "${TAGPIN_INSTALL_COMPONENTS:-}" ]]; then
    echo "components:"
    for c in $TAGPIN_INSTALL_COMPONENTS; do
      [[ -s "$REPO/manifests/components/$c/kustomization.yaml" ]] || die "no manifests/components/$c"
      echo "  - $(rel "$REPO/manifests/components/$c")"
    done
  fi
  echo "images:"
  echo "  - name: ghcr.io/tagpin/tagpin"
  echo "    newName: $NAME"
  echo "    digest: $DIGEST"
} >"$DIR/kustomization.yaml"

LOCAL_REGISTRY=""
for r in "${TAGPIN_REGISTRY:-}" "${TAGPIN_NODE_REGISTRY:-}"; do
  [[ -n "$r" && "${NAME%%/*}" == "$r" ]] && LOCAL_REGISTRY="$r"
done
if [[ -n "$LOCAL_REGISTRY" && -n "${TAGPIN_REGISTRY_USER:-}" ]]; then
  (
    umask 077
    auth="$(printf '%s:%s' "$TAGPIN_REGISTRY_USER" "$TAGPIN_REGISTRY_PASSWORD" | base64 -w0)"
    printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$LOCAL_REGISTRY" "$auth" >"$DIR/.dockerconfigjson"
  )
  cat >>"$DIR/kustomization.yaml" <<EOF
# The local registry needs credentials to pull tagpin's own image.
secretGenerator:
  - name: tagpin-pull
    namespace: tagpin-system
    type: kubernetes.io/dockerconfigjson
    files:
      - .dockerconfigjson
patches:
  - patch: |-
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: tagpin
        namespace: tagpin-system
      imagePullSecrets:
        - name: tagpin-pull
EOF
  if [[ " ${TAGPIN_INSTALL_COMPONENTS:-} " == *" drift-watch "* ]]; then
    cat >>"$DIR/kustomization.yaml" <<EOF
  - patch: |-
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: tagpin-watch
        namespace: tagpin-system
      imagePullSecrets:
        - name: tagpin-pull
EOF
  fi
fi

"$TAGPIN_K8S_BIN/kubectl" kustomize "$DIR" >/dev/null || die "$DIR does not render"
echo "$DIR"
