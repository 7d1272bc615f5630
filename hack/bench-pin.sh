#!/usr/bin/env bash
# Measures `tagpin pin` over a directory of PIN_MANIFESTS manifests (1000) naming PIN_TAGS
# distinct tags (200) of the local TLS registry: with its bounded concurrency (16 lookups at
# a time) and with --concurrency 1, which is the registry round trips done one after the
# other. Needs the registry of hack/registry.sh running; starts and stops nothing of it.
# tagpin reaches the registry through a loopback proxy that delays each direction by half of
# PIN_RTT_MS (50), so a round trip costs what it costs against a registry that far away.
#   hack/bench-pin.sh
# Environment: PIN_MANIFESTS, PIN_TAGS, PIN_PROFILE (release; debug skips the long build),
# PIN_RUNS (3 per setting; the best is reported), PIN_RTT_MS (0: straight to the registry).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

use_toolchains

MANIFESTS="${PIN_MANIFESTS:-1000}"
TAGS="${PIN_TAGS:-200}"
PROFILE="${PIN_PROFILE:-release}"
RUNS="${PIN_RUNS:-3}"
RTT_MS="${PIN_RTT_MS:-50}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE"

[[ -f "$TAGPIN_STATE/registry.env" ]] || die "no registry: run hack/registry.sh start first"
source "$TAGPIN_STATE/registry.env"
port_open "${TAGPIN_REGISTRY%:*}" "${TAGPIN_REGISTRY#*:}" || die "registry $TAGPIN_REGISTRY is not answering"

log "$PROFILE build of tagpin and push-sample"
if [[ "$PROFILE" == release ]]; then
  cargo build --release -p tagpin --bin tagpin -p tagpin-e2e --bin push-sample --bin delay-proxy
else
  cargo build -p tagpin --bin tagpin -p tagpin-e2e --bin push-sample --bin delay-proxy
fi

work="$(mktemp -d)"
proxy_pid=""
trap '[[ -z "$proxy_pid" ]] || kill "$proxy_pid" 2>/dev/null; rm -rf "$work"' EXIT
repo="bench/pin-$$-$(date +%s)"

log "pushing $TAGS tags of $TAGPIN_REGISTRY/$repo"
for ((t = 0; t < TAGS; t++)); do
  "$TARGET/push-sample" "$repo" "v$t" "pin-bench-$t" >/dev/null
done

# The name tagpin uses for the registry: the proxy's address (same IP, so the registry's
# certificate still matches), or the registry's own.
REGISTRY="$TAGPIN_REGISTRY"
if ((RTT_MS > 0)); then
  "$TARGET/delay-proxy" "$TAGPIN_REGISTRY" "$((RTT_MS / 2))" >"$work/proxy.addr" &
  proxy_pid=$!
  wait_for "the delay proxy" 10 test -s "$work/proxy.addr" || die "the delay proxy did not start"
  REGISTRY="$(<"$work/proxy.addr")"
  log "registry round trip: $RTT_MS ms (through $REGISTRY)"
fi

log "writing $MANIFESTS manifests"
mkdir -p "$work/manifests"
for ((m = 0; m < MANIFESTS; m++)); do
  t=$((m % TAGS))
  cat >"$work/manifests/app-$m.yaml" <<EOF
# app $m
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-$m
spec:
  template:
    spec:
      containers:
      - name: app
        image: $REGISTRY/$repo:v$t
EOF
done

printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" \
  "$(printf '%s:%s' "$TAGPIN_REGISTRY_USER" "$TAGPIN_REGISTRY_PASSWORD" | base64 -w0)" >"$work/docker.json"
cat >"$work/tagpin.yaml" <<EOF
resolver:
  dockerConfig: $work/docker.json
  registries:
    "$REGISTRY":
      ca: $TAGPIN_REGISTRY_CA
EOF

# Best of RUNS wall-clock seconds of `tagpin pin ARGS... DIR`.
best_seconds() {
  local best="" start end took
  for ((r = 0; r < RUNS; r++)); do
    start="$(date +%s.%N)"
    "$TARGET/tagpin" pin --config "$work/tagpin.yaml" "$@" "$work/manifests" >"$work/report.json" || true
    end="$(date +%s.%N)"
    took="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')"
    if [[ -z "$best" ]] || awk -v t="$took" -v b="$best" 'BEGIN { exit !(t < b) }'; then best="$took"; fi
  done
  echo "$best"
}

parse_only="$(best_seconds --check)"
sequential="$(best_seconds --concurrency 1 --output json)"
bounded="$(best_seconds --concurrency 16 --output json)"
images="$(grep -c '"digest"' "$work/report.json")"
[[ "$images" -eq "$MANIFESTS" ]] || die "expected $MANIFESTS pinned fields, the report has $images"

printf '| manifests | distinct tags | registry RTT | --check (no lookups) | --concurrency 1 (sequential) | --concurrency 16 (default) | speed-up |\n'
printf '|---|---|---|---|---|---|---|\n'
printf '| %s | %s | %s ms | %.2f s | %.2f s | %.2f s | %.1fx |\n' "$MANIFESTS" "$TAGS" "$RTT_MS" "$parse_only" "$sequential" "$bounded" \
  "$(awk -v s="$sequential" -v b="$bounded" 'BEGIN { print s / b }')"
