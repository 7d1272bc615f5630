#!/usr/bin/env bash
# The whole local cluster, in order: registries, control plane, node, and tagpin's own image
# pushed to the registry for the install tests. Runs inside the cluster's network namespace.
#   hack/netns.sh exec hack/cluster.sh start|stop
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

in_cluster_netns || die "run inside the cluster's network namespace: hack/netns.sh exec $0 ${1:-start}"
case "${1:-}" in
  start)
    "$REPO/hack/registry.sh" start
    "$REPO/hack/control-plane.sh" start
    "$REPO/hack/node.sh" start
    if [[ -x "$REPO/hack/image.sh" ]]; then
      "$REPO/hack/image.sh" >/dev/null
    fi
    ;;
  stop)
    "$REPO/hack/node.sh" stop
    # hack/test.sh's second control plane, when it runs.
    TAGPIN_CP_INSTANCE=2 "$REPO/hack/control-plane.sh" stop
    "$REPO/hack/control-plane.sh" stop
    "$REPO/hack/registry.sh" stop
    ;;
  *) die "usage: $0 start|stop" ;;
esac
