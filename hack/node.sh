#!/usr/bin/env bash
# Runs the local cluster's node: containerd (with runc and the CNI plugins), the kubelet and
# kube-proxy, registered as node "tagpin-node" with the control plane hack/control-plane.sh
# started. Runs only inside the cluster's network namespace (hack/netns.sh exec), where the
# node address $TAGPIN_NODE_IP and the Pod bridge live.
# Usage: hack/node.sh start|stop
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE_NAME=tagpin-node
DIR="$TAGPIN_STATE/node"
CP="$TAGPIN_STATE/control-plane"
PKI="$CP/pki"
# Sockets and Pod network namespaces: a short path (socket paths are limited to 107 bytes)
# that only this node uses, so stop can clean it without touching anything else.
RUN="/run/$TAGPIN_NETNS-node"
# The Pods' cgroups, one tree per cluster: a second cluster (the demo beside the tests, in its
# own network namespace) never sees or kills the first one's Pods.
CGROUP_ROOT="/$TAGPIN_NETNS"
SOCK="$RUN/containerd.sock"
SANDBOX_IMAGE=tagpin.local/pause:1
KUBELET_HEALTHZ=10248
PROXY_HEALTHZ=10256
PROXY_METRICS=10249

need_netns() {
  in_cluster_netns || die "run inside the cluster's network namespace: hack/netns.sh exec $0 $*"
}

make_pki() {
  pki_cert "$PKI" "$PKI/kubelet-client" "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  pki_cert "$PKI" "$PKI/kubelet-serving" "/CN=$NODE_NAME" serverAuth "IP:$TAGPIN_NODE_IP,DNS:$NODE_NAME"
  pki_cert "$PKI" "$PKI/kube-proxy" "/CN=system:kube-proxy" clientAuth
  node_kubeconfig "$DIR/kubelet.kubeconfig" "$PKI/kubelet-client"
  node_kubeconfig "$DIR/kube-proxy.kubeconfig" "$PKI/kube-proxy"
}

# node_kubeconfig FILE CERT_PREFIX: the node's components reach the API server at the node address.
node_kubeconfig() { write_kubeconfig "$1" "https://$TAGPIN_NODE_IP:6443" "$PKI/ca.pem" "$2"; }

# The registries' CA for containerd: the kubelet pulls from the local registry at the node
# address, over TLS checked against the test CA, with the Pod's pull secret.
write_registry_hosts() {
  local certs="$DIR/containerd/certs.d" addr
  rm -rf "$certs"
  for addr in "$TAGPIN_NODE_IP:5443" "$TAGPIN_NODE_IP:5444"; do
    mkdir -p "$certs/$addr"
    cat >"$certs/$addr/hosts.toml" <<EOF2
server = "https://$addr"
[host."https://$addr"]
  capabilities = ["pull", "resolve"]
  ca = "$TAGPIN_STATE/pki/ca.pem"
EOF2
  done
  mkdir -p "$certs/$TAGPIN_NODE_IP:5080"
  cat >"$certs/$TAGPIN_NODE_IP:5080/hosts.toml" <<EOF2
server = "http://$TAGPIN_NODE_IP:5080"
[host."http://$TAGPIN_NODE_IP:5080"]
  capabilities = ["pull", "resolve"]
EOF2
}

write_containerd_config() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d" "$RUN"
  write_registry_hosts
  cat >"$DIR/containerd/config.toml" <<EOF2
version = 3
root = "$DIR/containerd/root"
state = "$RUN/state"

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$SANDBOX_IMAGE"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$DIR/containerd/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  # Pod network namespaces under the state dir, which stop cleans, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # root here lacks CAP_SYS_RESOURCE, so the negative OOM scores the kubelet asks for
  # (-998 for sandboxes) cannot be set: clamp them to containerd's own score instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$TAGPIN_NODE_BIN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$TAGPIN_NODE_BIN"]
    conf_dir = "$DIR/cni/net.d"
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
EOF2
  # One bridge on the node; host-local hands out the node's Pod range. No masquerading:
  # nothing leaves the namespace.
  cat >"$DIR/cni/net.d/10-tagpin.conflist" <<EOF2
{
  "cniVersion": "1.0.0",
  "name": "tagpin",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "tagpin0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${TAGPIN_POD_CIDR%.*.*}.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$RUN/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF2
}

start_containerd() {
  pid_alive "$DIR/containerd.pid" containerd && return 0
  write_containerd_config
  # The shim is found on PATH.
  PATH="$TAGPIN_NODE_BIN:$PATH" start_daemon "$DIR/containerd.pid" "$DIR/containerd.log" "$DIR/containerd.log" \
    "$TAGPIN_NODE_BIN/containerd" --config "$DIR/containerd/config.toml"
  wait_for "containerd on $SOCK" 60 "$TAGPIN_NODE_BIN/ctr" --address "$SOCK" version ||
    { tail -n 30 "$DIR/containerd.log" >&2; exit 1; }
}

# The sandbox image: hack/node/pause.c, static, as a one-layer OCI image imported into
# containerd's Kubernetes namespace, so no Pod needs a registry outside the cluster.
import_pause_image() {
  local ctr=("$TAGPIN_NODE_BIN/ctr" --address "$SOCK" -n k8s.io)
  "${ctr[@]}" images ls -q | grep -qx "$SANDBOX_IMAGE" && return 0
  local work
  work="$(mktemp -d)"
  mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
  gcc -static -Os -o "$work/rootfs/pause" "$REPO/hack/node/pause.c"
  strip "$work/rootfs/pause"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" .
  local diff_id layer config manifest
  diff_id="$(sha256sum <"$work/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
  layer="$(oci_blob "$work" "$work/layer.tar.gz")"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$diff_id" >"$work/config.json"
  config="$(oci_blob "$work" "$work/config.json")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$(stat -c %s "$work/config.json")" "$layer" "$(stat -c %s "$work/layer.tar.gz")" >"$work/manifest.json"
  manifest="$(oci_blob "$work" "$work/manifest.json")"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s"}}]}' \
    "$manifest" "$(stat -c %s "$work/manifest.json")" "$SANDBOX_IMAGE" >"$work/oci/index.json"
  tar -C "$work/oci" -cf "$work/pause.tar" .
  "${ctr[@]}" images import "$work/pause.tar" >/dev/null
  rm -rf "$work"
}

# oci_blob WORK FILE: copies FILE into the layout's blobs and prints its sha256.
oci_blob() {
  local digest
  digest="$(sha256sum <"$2" | cut -d' ' -f1)"
  cp "$2" "$1/oci/blobs/sha256/$digest"
  echo "$digest"
}

# cgroup_dirs: this node's cgroup directory in every mounted v1 hierarchy.
cgroup_dirs() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [[ -e "$h/cgroup.procs" ]] && echo "${h%/}$CGROUP_ROOT"
  done
}

start_kubelet() {
  pid_alive "$DIR/kubelet.pid" kubelet && return 0
  mkdir -p "$DIR/kubelet" "$DIR/pod-logs"
  local d
  for d in $(cgroup_dirs); do
    mkdir -p "$d"
    # A new cpuset group starts with no CPUs or memory nodes: give it its parent's.
    if [[ -e "$d/cpuset.cpus" && -z "$(<"$d/cpuset.cpus")" ]]; then
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
    fi
  done
  cat >"$DIR/kubelet.yaml" <<EOF2
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine mounts cgroup v1; kubelet 1.35+ refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
address: $TAGPIN_NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ
tlsCertFile: $PKI/kubelet-serving.pem
tlsPrivateKeyFile: $PKI/kubelet-serving-key.pem
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.pem
authorization:
  mode: Webhook
failSwapOn: false
resolvConf: ""
podLogsDir: $DIR/pod-logs
serializeImagePulls: false
# A test machine's disk is shared with everything else: never evict or collect images for it.
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
cgroupRoot: $CGROUP_ROOT
EOF2
  start_daemon "$DIR/kubelet.pid" "$DIR/kubelet.log" "$DIR/kubelet.log" \
    "$TAGPIN_K8S_BIN/kubelet" \
    --config="$DIR/kubelet.yaml" \
    --kubeconfig="$DIR/kubelet.kubeconfig" \
    --root-dir="$DIR/kubelet" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$TAGPIN_NODE_IP" \
    --v=1
}

start_kube_proxy() {
  pid_alive "$DIR/kube-proxy.pid" kube-proxy && return 0
  cat >"$DIR/kube-proxy.yaml" <<EOF2
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $TAGPIN_POD_CIDR
hostnameOverride: $NODE_NAME
clientConnection:
  kubeconfig: $DIR/kube-proxy.kubeconfig
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$PROXY_METRICS
# conntrack limits are per machine, not per network namespace: leave them alone.
conntrack:
  maxPerCore: 0
EOF2
  start_daemon "$DIR/kube-proxy.pid" "$DIR/kube-proxy.log" "$DIR/kube-proxy.log" \
    "$TAGPIN_K8S_BIN/kube-proxy" --config="$DIR/kube-proxy.yaml" --v=1
}

start() {
  need_netns start
  [[ -x "$TAGPIN_K8S_BIN/kubelet" && -x "$TAGPIN_NODE_BIN/containerd" ]] || die "node tools missing: run hack/tools.sh"
  [[ -s "$PKI/ca.pem" ]] || die "no control plane: run hack/control-plane.sh start first"
  mkdir -p "$DIR"
  make_pki
  start_containerd
  import_pause_image
  start_kubelet
  start_kube_proxy
  local kubectl=("$TAGPIN_K8S_BIN/kubectl" --kubeconfig "$CP/kubeconfig")
  wait_for "node $NODE_NAME Ready" 120 \
    "${kubectl[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s ||
    { tail -n 40 "$DIR/kubelet.log" >&2; exit 1; }
  log "node $NODE_NAME ready (containerd at $SOCK)"
}

# The Pods' processes, in the kubelet's cgroups: killed before the runtime stops, so nothing
# of the node outlives it.
kill_pods() {
  local procs pid
  procs="$(find "/sys/fs/cgroup/pids$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null || true)"
  for pid in $procs; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true
}

unmount_under() {
  local dir="$1" mnt
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r mnt; do
      umount -l "$mnt" 2>/dev/null || true
    done
}

stop() {
  stop_daemon "$DIR/kube-proxy.pid" kube-proxy
  stop_daemon "$DIR/kubelet.pid" kubelet
  kill_pods
  stop_daemon "$DIR/containerd.pid" containerd
  unmount_under "$DIR"
  unmount_under "$RUN"
  rm -rf "$RUN"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
