#!/usr/bin/env bash
# Benchmarks tagpin serve against the real TLS registry: throughput, latency, registry
# manifest requests, RSS and CPU for warm, cold, burst, verified, large and idle scenarios,
# plus a baseline that pins nothing. Prints a Markdown table and the budgets of issue 6,
# and writes .tagpin/bench/results.json. Benchmarks never fail by timing: the exit status
# is non-zero only when something broke.
#   hack/bench.sh
# Environment: BENCH_SECONDS (3 per run), BENCH_CONNECTIONS (16), BENCH_RATE (2000),
# BENCH_COLD_REQUESTS (150), BENCH_VERIFIED_COLD_REQUESTS (30), BENCH_BURST (1000), BENCH_IDLE_SECONDS (60),
# BENCH_CLIENT_THREADS (2), BENCH_OUT (results file), BENCH_SCENARIOS (groups to run:
# throughput, latency (cold admissions behind a delaying proxy), first (first admission
# after a start); all by default), BENCH_LATENCY_RTTS_MS, BENCH_LATENCY_SAMPLES, BENCH_FIRST_STARTS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

use_toolchains

OUT_DIR="$TAGPIN_STATE/bench"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/release"
mkdir -p "$OUT_DIR"

started_registry=""
bench_pid=""
cleanup() {
  # tagpin processes are the load driver's children; it kills them itself unless it died.
  if [[ -n "$bench_pid" ]]; then
    local child
    for child in $(pgrep -P "$bench_pid" 2>/dev/null || true); do
      kill -TERM "$child" 2>/dev/null || true
    done
    kill -TERM "$bench_pid" 2>/dev/null || true
  fi
  if [[ -n "$started_registry" ]]; then
    hack/registry.sh stop
  fi
}
trap cleanup EXIT

log "tools (cosign, docker-registry)"
hack/tools.sh
eval "$(hack/tools.sh env)"

if ! pid_alive "$TAGPIN_STATE/registry/tls.pid" docker-registry; then
  started_registry=1
fi
hack/registry.sh start
source "$TAGPIN_STATE/registry.env"

log "release build of tagpin and the load driver"
cargo build --release -p tagpin --bin tagpin
cargo build --release -p tagpin-e2e --bin bench

# The burst holds a thousand connections open at once, on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "running the scenarios (a few minutes; at least BENCH_IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}s)"
TAGPIN_BIN="$TARGET/tagpin" TAGPIN_COSIGN_V2="$TAGPIN_COSIGN_V2" \
  BENCH_OUT="${BENCH_OUT:-$OUT_DIR/results.json}" \
  "$TARGET/bench" > >(tee "$OUT_DIR/table.md") &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""

{
  echo
  echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB memory"
  echo "Load at the end of the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine competes for the cores)"
  echo "Command: hack/bench.sh (BENCH_SECONDS=${BENCH_SECONDS:-3})"
} | tee -a "$OUT_DIR/table.md"
[[ "$status" -eq 0 ]] || die "the bench failed (exit $status)"
log "results: ${BENCH_OUT:-$OUT_DIR/results.json}, table: $OUT_DIR/table.md"
[[ "${BENCH_PIN:-1}" == 0 ]] || hack/bench-pin.sh # tagpin pin over 1,000 manifests, 200 tags
[[ "${BENCH_INVENTORY:-1}" == 0 ]] || hack/bench-inventory.sh # inventory at scale; needs the control plane
