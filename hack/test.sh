#!/usr/bin/env bash
# The one tagpin test command: lint, start the local registry and control plane, run every test.
# TAGPIN_KEEP=1 leaves the registry and control plane running afterwards.
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

cleanup() {
  local rc=$?
  if [[ "${TAGPIN_KEEP:-0}" != 1 ]]; then
    "$REPO/hack/control-plane.sh" stop || true
    "$REPO/hack/registry.sh" stop || true
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

step "registry"
hack/registry.sh start
source "$TAGPIN_STATE/registry.env"

step "control plane"
hack/control-plane.sh start
source "$TAGPIN_STATE/control-plane.env"

step "manifests"
hack/manifests.sh check

step "cargo test"
cargo test --workspace

if [[ -f hack/fuzz.sh ]]; then
  step "fuzz smoke"
  bash hack/fuzz.sh smoke
fi
