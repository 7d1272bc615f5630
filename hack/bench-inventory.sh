#!/usr/bin/env bash
# The inventory scale bench: BENCH_PODS (10000) Pods naming BENCH_TAGS (500) distinct tags of
# the local TLS registry, in a namespace of their own (bench-inventory-<unique>, deleted
# afterwards) on the local API server, then one `tagpin inventory --drift` pass: its wall
# time, tagpin's peak RSS, and the registry's manifest requests (must equal the distinct
# tags). Needs the control plane running (hack/control-plane.sh start); starts the registry
# if needed. Writes $TAGPIN_STATE/bench/inventory.json and inventory.md. Never fails by timing.
#   hack/bench-inventory.sh             (hack/bench.sh runs it unless BENCH_INVENTORY=0)
# Environment: BENCH_PODS, BENCH_TAGS, BENCH_MOVED_TAGS (5), BENCH_CREATE_CONCURRENCY (32),
# BENCH_INVENTORY_OUT (results file; the table goes beside it as .md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

use_toolchains

OUT="${BENCH_INVENTORY_OUT:-$TAGPIN_STATE/bench/inventory.json}"
TABLE="${OUT%.json}.md"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/release"
mkdir -p "$(dirname "$OUT")"

started_registry=""
cleanup() {
  [[ -z "$started_registry" ]] || hack/registry.sh stop
}
trap cleanup EXIT

hack/tools.sh
eval "$(hack/tools.sh env)"
if ! pid_alive "$TAGPIN_STATE/registry/tls.pid" docker-registry; then
  started_registry=1
  hack/registry.sh start
fi
source "$TAGPIN_STATE/registry.env"
# The control plane is shared with whoever else uses it, so it is never started or stopped
# here: only a namespace of the bench's own is created and deleted.
[[ -s "$TAGPIN_STATE/control-plane.env" ]] || die "no control plane: run hack/control-plane.sh start first (hack/bench.sh: or BENCH_INVENTORY=0 to skip this bench)"
source "$TAGPIN_STATE/control-plane.env"
kubectl get --raw /readyz >/dev/null || die "the API server in $TAGPIN_STATE/control-plane.env is not ready"

log "release build of tagpin and the inventory bench driver"
cargo build --release -p tagpin --bin tagpin -p tagpin-e2e --bin bench-inventory

log "inventory at scale: ${BENCH_PODS:-10000} Pods, ${BENCH_TAGS:-500} tags (a few minutes, most of it creating and deleting Pods)"
TAGPIN_BIN="$TARGET/tagpin" BENCH_OUT="$OUT" "$TARGET/bench-inventory" | tee "$TABLE"
{
  echo
  echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB memory; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "Command: hack/bench-inventory.sh"
} | tee -a "$TABLE"
