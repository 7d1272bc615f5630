#!/usr/bin/env bash
# The network namespace the local cluster lives in. Everything hack/ starts for tests and the
# demo (registries, etcd, API server, kubelet, containerd, Pods) listens and talks inside it,
# so test traffic never leaves it: its own loopback, the node address $TAGPIN_NODE_IP (on
# that loopback) and the Pod bridge the CNI plugin creates.
#   hack/netns.sh create         create it (idempotent)
#   hack/netns.sh exec CMD...    run CMD inside it (creating it first); only the network
#                                namespace changes, so mounts the kubelet makes stay visible
#   hack/netns.sh shell          an interactive shell inside it, with KUBECONFIG set
#   hack/netns.sh delete         delete it (stop what runs in it first: hack/node.sh stop)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

create() {
  [[ $EUID -eq 0 ]] || die "the local cluster needs root (network namespace, kubelet, containerd)"
  if [[ ! -e "/run/netns/$TAGPIN_NETNS" ]]; then
    ip netns add "$TAGPIN_NETNS" || die "cannot create the network namespace $TAGPIN_NETNS"
  fi
  ip -n "$TAGPIN_NETNS" link set lo up
  ip -n "$TAGPIN_NETNS" addr replace "$TAGPIN_NODE_IP/32" dev lo
}

enter() {
  create
  if in_cluster_netns; then
    exec "$@"
  fi
  exec nsenter --net="/run/netns/$TAGPIN_NETNS" -- "$@"
}

case "${1:-}" in
  create) create ;;
  exec)
    shift
    (($#)) || die "usage: $0 exec CMD..."
    enter "$@"
    ;;
  shell)
    [[ -s "$TAGPIN_STATE/control-plane.env" ]] && source "$TAGPIN_STATE/control-plane.env"
    eval "$("$REPO/hack/tools.sh" env)"
    log "a shell inside the network namespace $TAGPIN_NETNS (exit to leave); kubectl talks to the local cluster"
    enter "${SHELL:-/bin/bash}" -i
    ;;
  delete)
    if [[ -e "/run/netns/$TAGPIN_NETNS" ]]; then
      ip netns delete "$TAGPIN_NETNS"
    fi
    ;;
  *) die "usage: $0 create|exec CMD...|shell|delete" ;;
esac
