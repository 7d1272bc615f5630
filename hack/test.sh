#!/usr/bin/env bash
# The one tagpin test command: lint, start the local cluster (registries, control plane, a
# node, tagpin's own image), run every test.
# Everything after the tools runs inside the cluster's network namespace (hack/netns.sh), so
# the tests' traffic stays on its loopback, node address and Pod bridge.
# TAGPIN_KEEP=1 leaves the cluster running afterwards (enter it with hack/netns.sh shell).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

use_toolchains
# A fresh CI clone reuses compiled dependencies from the tool cache instead of an empty target/.
if [[ -n "${CI:-}" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="$TAGPIN_CACHE/cargo-target"
fi

step() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS

# One line per tracked file that differs from HEAD: its status and its content's hash, so a
# file that was already modified and is changed again by the run also shows.
tracked_state() {
  local line file
  git status --porcelain=v1 --untracked-files=no | while IFS= read -r line; do
    file="${line:3}"
    file="${file##* -> }"
    printf '%s %s\n' "$line" "$(git hash-object -- "$file" 2>/dev/null || echo deleted)"
  done
}
tracked_before="$(tracked_state)"

cleanup() {
  local rc=$?
  if [[ "${TAGPIN_KEEP:-0}" != 1 ]]; then
    "$REPO/hack/netns.sh" exec "$REPO/hack/cluster.sh" stop || true
    TAGPIN_DEMO_STATE="$TAGPIN_STATE/demo-cycle" "$REPO/hack/demo.sh" stop >/dev/null 2>&1 || true
  fi
  printf '\n==> %s after %ss\n' "$([[ $rc == 0 ]] && echo passed || echo "FAILED (exit $rc)")" \
    "$((SECONDS - started))" >&2
}
trap cleanup EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "tools"
hack/tools.sh
eval "$(hack/tools.sh env)"
# The cluster's namespace reaches no package registry: everything the build needs comes first.
cargo fetch --locked >/dev/null
hack/image.sh prepare

step "local cluster (in network namespace $TAGPIN_NETNS)"
hack/netns.sh exec hack/cluster.sh start
# A second control plane, for the tests that read several clusters (inventory --context).
TAGPIN_CP_INSTANCE=2 hack/netns.sh exec hack/control-plane.sh start
source "$TAGPIN_STATE/registry.env"
source "$TAGPIN_STATE/control-plane.env"

step "manifests"
hack/netns.sh exec hack/manifests.sh check

step "cargo test"
hack/netns.sh exec cargo test --workspace -- --skip admissions_survive_restarts

step "tagpin under churn on the node (figures printed)"
hack/netns.sh exec cargo test -p tagpin-e2e --test node_reliability -- --nocapture

step "demo: start, stop, start, stop (its own cluster beside this one)"
demo_log="$TAGPIN_STATE/demo-cycle.log"
for round in 1 2; do
  TAGPIN_DEMO_STATE="$TAGPIN_STATE/demo-cycle" hack/demo.sh >"$demo_log" 2>&1 ||
    { tail -n 40 "$demo_log" >&2; echo "error: hack/demo.sh failed in round $round (log: $demo_log)" >&2; exit 1; }
  TAGPIN_DEMO_STATE="$TAGPIN_STATE/demo-cycle" hack/demo.sh stop >>"$demo_log" 2>&1
  echo "round $round: the demo's Pods ran the pinned digest; stopped" >&2
done

if [[ -f hack/fuzz.sh ]]; then
  step "fuzz smoke"
  # Fuzzing needs no cluster (and installs cargo-fuzz from crates.io): it runs outside.
  bash hack/fuzz.sh smoke
fi

step "tracked files unchanged"
# A test run must never change tracked files (a stale Cargo.lock rewritten by a build, a
# regenerated fixture): the tree is compared with how the run found it.
changed="$(diff <(printf '%s\n' "$tracked_before") <(tracked_state) | sed -n 's/^[<>] ...//p' |
  sed 's/ [0-9a-f]*$\| deleted$//' | sort -u)" || true
if [[ -n "$changed" ]]; then
  printf '%s\n' "$changed" >&2
  echo "error: the test run changed these tracked files (see git diff)" >&2
  exit 1
fi
