#!/usr/bin/env bash
# Runs tagpin's cargo-fuzz targets (every crates/*/fuzz crate).
#   hack/fuzz.sh smoke              each target for 10 s (what hack/test.sh runs)
#   hack/fuzz.sh run SECONDS [T...] each target (or the named ones) for SECONDS
#   hack/fuzz.sh list               the targets
# Only stable Rust is installed, so cargo-fuzz runs with RUSTC_BOOTSTRAP=1. Targets build
# with AddressSanitizer (FUZZ_SANITIZER=none to skip it) into one target directory in the
# tool cache, outside the repo and shared by every fuzz crate: the first build of a fuzz
# crate takes minutes on 2 cores, later runs (and CI on the same machine) only link.
# Crashes land in crates/<crate>/fuzz/artifacts/<target>/; the failing input is kept as a
# regression test next to the code it broke.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT="$TAGPIN_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
SANITIZER="${FUZZ_SANITIZER:-address}"
FUZZ_TARGET_DIR="$TAGPIN_CACHE/fuzz-target"

install_cargo_fuzz() {
  [[ -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ]] && return 0
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT"
  cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$CARGO_FUZZ_ROOT" cargo-fuzz
}

fuzz_dirs() {
  local d
  for d in "$REPO"/crates/*/fuzz; do
    [[ -f "$d/Cargo.toml" ]] && echo "$d"
  done
}

targets_of() {
  sed -n 's/^name = "\(.*\)"$/\1/p' "$1/Cargo.toml" | grep -v -- '-fuzz$'
}

run_all() {
  local seconds="$1"
  shift
  local wanted=("$@") dir target failed=0
  install_cargo_fuzz
  export PATH="$CARGO_FUZZ_ROOT/bin:$PATH" RUSTC_BOOTSTRAP=1
  while read -r dir; do
    while read -r target; do
      if ((${#wanted[@]})) && [[ ! " ${wanted[*]} " == *" $target "* ]]; then
        continue
      fi
      log "fuzzing ${dir#"$REPO"/}:$target for ${seconds}s"
      mkdir -p "$dir/corpus/$target"
      # A scratch copy keeps generated inputs out of the committed seed corpus.
      local work
      work="$(mktemp -d)"
      cp -r "$dir/corpus/$target/." "$work/" 2>/dev/null || true
      if ! (cd "$dir" && cargo fuzz run --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" "$target" "$work" -- \
        -max_total_time="$seconds" -print_final_stats=0 >"$work.log" 2>&1); then
        tail -n 30 "$work.log" >&2
        log "error: $target failed; the input is in ${dir#"$REPO"/}/artifacts/$target/"
        failed=1
      fi
      rm -rf "$work" "$work.log"
    done < <(targets_of "$dir")
  done < <(fuzz_dirs)
  return "$failed"
}

case "${1:-}" in
  smoke) run_all 10 ;;
  run) shift; run_all "${1:?usage: $0 run SECONDS [TARGET...]}" "${@:2}" ;;
  list) while read -r d; do targets_of "$d" | sed "s|^|${d#"$REPO"/}: |"; done < <(fuzz_dirs) ;;
  *) die "usage: $0 smoke | run SECONDS [TARGET...] | list" ;;
esac
