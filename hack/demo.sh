#!/usr/bin/env bash
# Demo of tagpin against the local registry and control plane (skeleton: services only so far).
#   hack/demo.sh        start everything and print how to use it
#   hack/demo.sh stop   stop the registry and the control plane
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

if [[ "${1:-}" == stop ]]; then
  hack/control-plane.sh stop
  hack/registry.sh stop
  exit 0
fi

hack/tools.sh
eval "$(hack/tools.sh env)"
hack/registry.sh start
hack/control-plane.sh start
source "$TAGPIN_STATE/registry.env"
source "$TAGPIN_STATE/control-plane.env"

# TODO: push a signed image to $TAGPIN_REGISTRY with cosign, start tagpin on 127.0.0.1:8443
# with a serving cert from $TAGPIN_TEST_CA, register it with
#   hack/manifests.sh local-webhook "$TAGPIN_TEST_CA"
# and create a Deployment to show the pinned image and the audit annotations.

cat <<MSG
Registry:      https://$TAGPIN_REGISTRY (user $TAGPIN_REGISTRY_USER), mirror http://$TAGPIN_MIRROR
Control plane: KUBECONFIG=$KUBECONFIG
Use:  source $TAGPIN_STATE/registry.env; source $TAGPIN_STATE/control-plane.env; eval "\$(hack/tools.sh env)"
Stop: hack/demo.sh stop
MSG
