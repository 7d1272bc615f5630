#!/usr/bin/env bash
# Builds tagpin's container image on this machine, without a Docker engine, and pushes it.
#   hack/image.sh          build the release binary (cargo no-op when up to date), assemble the
#                          image, push it, check it, print REPO:TAG@sha256:<64 hex> on stdout
#   hack/image.sh prepare    only what downloads: the release build and Debian's packages
#                            (hack/test.sh runs it before entering the cluster's namespace)
#   hack/image.sh check REF  extract REF and run it as uid 65532 on a read-only root
#
# The image is distroless-style: the release binary at /usr/local/bin/tagpin, exactly the
# shared libraries it links (with their transitive needs) taken from Debian's packages with
# `apt-get download` + `dpkg-deb -x`, Debian's Mozilla CA bundle, /etc/passwd and /etc/group
# with `nonroot` (uid/gid 65532), and /var/lib/dpkg/status.d plus copyright files so scanners
# and license checks see the packages. No shell, no package manager. One layer, written with
# fixed owners, sorted names and every mtime at SOURCE_DATE_EPOCH; crane appends it to an empty
# OCI base and sets user, entrypoint, workdir, env and the org.opencontainers.image labels.
# The same binary and package versions give the same digest.
#
# Inputs (environment):
#   TAGPIN_IMAGE_REPO   repository to push to (default 127.0.0.1:5443/tagpin/tagpin)
#   TAGPIN_IMAGE_TAG    tag (default <version>-<12 hex of HEAD>, with -dirty for a changed tree)
#   TAGPIN_BINARY       package this binary instead of building <target>/release/tagpin
#   SOURCE_DATE_EPOCH   time of every file and of the image (default: the HEAD commit's time)
#   $TAGPIN_STATE/registry.env (hack/registry.sh): TAGPIN_REGISTRY, TAGPIN_REGISTRY_CA,
#                       TAGPIN_REGISTRY_USER, TAGPIN_REGISTRY_PASSWORD; when the repository is
#                       on TAGPIN_REGISTRY, crane trusts that CA and logs in with those. Other
#                       registries use your docker config (DOCKER_CONFIG, ~/.docker).
# Outputs:
#   stdout                 REPO:TAG@sha256:<digest>, nothing else
#   $TAGPIN_STATE/image.env  export TAGPIN_IMAGE='REPO:TAG@sha256:...' (and _REPO, _TAG, _DIGEST)
#   $TAGPIN_STATE/image/   the rootfs and layer of the last build, for inspection
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"
use_toolchains

WORK="$TAGPIN_STATE/image"
DEB_CACHE="$TAGPIN_CACHE/image-debs"
ENV_FILE="$TAGPIN_STATE/image.env"
UID_NONROOT=65532
SOURCE_URL="$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)"

[[ -s "$TAGPIN_STATE/registry.env" ]] && source "$TAGPIN_STATE/registry.env"
IMAGE_REPO="${TAGPIN_IMAGE_REPO:-${TAGPIN_REGISTRY:-127.0.0.1:5443}/tagpin/tagpin}"

crane() { "$TAGPIN_CRANE" "$@"; }

# Points crane at the local registry's CA and credentials when IMAGE_REPO lives there.
crane_auth() {
  local host="${IMAGE_REPO%%/*}" auth
  [[ -n "${TAGPIN_REGISTRY:-}" && "$host" == "$TAGPIN_REGISTRY" ]] || return 0
  mkdir -p "$WORK/auth"
  # Go reads one CA file: the system bundle plus the test CA, so other hosts still verify.
  cat /etc/ssl/certs/ca-certificates.crt "$TAGPIN_REGISTRY_CA" >"$WORK/auth/ca.pem" 2>/dev/null ||
    cp "$TAGPIN_REGISTRY_CA" "$WORK/auth/ca.pem"
  export SSL_CERT_FILE="$WORK/auth/ca.pem"
  if [[ -n "${TAGPIN_REGISTRY_USER:-}" ]]; then
    auth="$(printf '%s:%s' "$TAGPIN_REGISTRY_USER" "$TAGPIN_REGISTRY_PASSWORD" | base64 -w0)"
    (umask 077 && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$host" "$auth" >"$WORK/auth/config.json")
    export DOCKER_CONFIG="$WORK/auth"
  fi
}

release_binary() {
  if [[ -n "${TAGPIN_BINARY:-}" ]]; then
    [[ -x "$TAGPIN_BINARY" ]] || die "TAGPIN_BINARY=$TAGPIN_BINARY is not an executable"
    echo "$TAGPIN_BINARY"
    return
  fi
  log "cargo build --release -p tagpin --bin tagpin (minutes the first time)"
  cargo build --release --locked -p tagpin --bin tagpin >&2
  echo "${CARGO_TARGET_DIR:-$REPO/target}/release/tagpin"
}

# needed ELF: the sonames ELF links (DT_NEEDED).
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
# interpreter ELF: the dynamic loader ELF names (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2.
interpreter() { readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p'; }

# owning_package PATH_SUFFIX: the Debian package that owns the one file ending in PATH_SUFFIX.
owning_package() {
  local owners
  owners="$(dpkg -S "*$1" 2>/dev/null | cut -d: -f1 | sort -u)"
  [[ -n "$owners" ]] || die "no installed Debian package ships $1"
  [[ "$(wc -l <<<"$owners")" == 1 ]] || die "several packages ship $1: $owners"
  echo "$owners"
}

# fetch_deb PACKAGE: the cached .deb of PACKAGE's candidate version (downloaded if missing).
fetch_deb() {
  local pkg="$1" version file
  version="$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')"
  [[ -n "$version" && "$version" != "(none)" ]] || die "apt knows no candidate for $pkg: run apt-get update"
  file="$(printf '%s_%s_' "$pkg" "${version//:/%3a}")"
  mkdir -p "$DEB_CACHE"
  if ! compgen -G "$DEB_CACHE/$file*.deb" >/dev/null; then
    log "apt-get download $pkg=$version"
    (cd "$DEB_CACHE" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2) || {
      # A stale package list names versions the archive no longer serves.
      apt-get update -qq >&2
      version="$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')"
      (cd "$DEB_CACHE" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2)
      file="$(printf '%s_%s_' "$pkg" "${version//:/%3a}")"
    }
  fi
  compgen -G "$DEB_CACHE/$file*.deb" | head -n1
}

# copy_path TREE ROOTFS PATH: copies PATH from TREE into ROOTFS, following symlinks (whose
# targets may be absolute, i.e. relative to TREE) and copying each link and its target.
copy_path() {
  local tree="$1" rootfs="$2" path="$3" target i
  for ((i = 0; i < 10; i++)); do
    [[ -e "$tree$path" || -L "$tree$path" ]] || return 1
    mkdir -p "$rootfs$(dirname "$path")"
    cp -a "$tree$path" "$rootfs$path"
    [[ -L "$tree$path" ]] || return 0
    target="$(readlink "$tree$path")"
    [[ "$target" == /* ]] || target="$(dirname "$path")/$target"
    path="$(realpath -m -s "$target")"
  done
  die "symlink chain too long at $path"
}

# find_lib TREE SONAME: the path (inside TREE) of SONAME in the multiarch library directories.
find_lib() {
  local tree="$1" soname="$2" dir multiarch
  multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
  for dir in "/lib/$multiarch" "/usr/lib/$multiarch" /lib /usr/lib; do
    if [[ -e "$tree$dir/$soname" || -L "$tree$dir/$soname" ]]; then
      echo "$dir/$soname"
      return 0
    fi
  done
  return 1
}

# assemble BINARY ROOTFS: writes the image's filesystem into ROOTFS; prints the packages used.
assemble() {
  local binary="$1" rootfs="$2" debs="$WORK/debs" multiarch pkg deb lib path
  local -A packages=() seen=()
  multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
  rm -rf "$rootfs" "$debs"
  mkdir -p "$rootfs" "$debs"

  # Libraries: the binary's sonames and theirs, each from the package that ships it here.
  local queue=() interp
  interp="$(interpreter "$binary")"
  mapfile -t queue < <(needed "$binary")
  packages[$(owning_package "/$multiarch/$(basename "$interp")")]=1
  while ((${#queue[@]})); do
    lib="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -z "${seen[$lib]:-}" ]] || continue
    seen[$lib]=1
    pkg="$(owning_package "/$multiarch/$lib")"
    if [[ -z "${packages[$pkg]:-}" || ! -d "$debs/$pkg" ]]; then
      packages[$pkg]=1
      deb="$(fetch_deb "$pkg")"
      mkdir -p "$debs/$pkg" && dpkg-deb -x "$deb" "$debs/$pkg"
    fi
    path="$(find_lib "$debs/$pkg" "$lib")" || die "$pkg does not ship $lib"
    copy_path "$debs/$pkg" "$rootfs" "$path"
    mapfile -t -O "${#queue[@]}" queue < <(needed "$debs/$pkg$path" 2>/dev/null || true)
  done
  for pkg in "${!packages[@]}"; do
    [[ -d "$debs/$pkg" ]] || { mkdir -p "$debs/$pkg" && dpkg-deb -x "$(fetch_deb "$pkg")" "$debs/$pkg"; }
  done
  pkg="$(owning_package "/$multiarch/$(basename "$interp")")"
  copy_path "$debs/$pkg" "$rootfs" "$interp" || die "$pkg does not ship $interp"

  # CA certificates: what update-ca-certificates builds from Debian's default selection (every
  # Mozilla certificate), concatenated in name order.
  for pkg in ca-certificates base-files; do
    packages[$pkg]=1
    mkdir -p "$debs/$pkg" && dpkg-deb -x "$(fetch_deb "$pkg")" "$debs/$pkg"
  done
  mkdir -p "$rootfs/etc/ssl/certs"
  LC_ALL=C find "$debs/ca-certificates/usr/share/ca-certificates/mozilla" -name '*.crt' -print0 |
    LC_ALL=C sort -z | xargs -0 cat >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  # base-files: only os-release, which scanners read to match the dpkg records below.
  copy_path "$debs/base-files" "$rootfs" /usr/lib/os-release
  ln -s ../usr/lib/os-release "$rootfs/etc/os-release"

  # Package records (distroless' status.d layout) and licences of everything shipped.
  # A package whose doc directory links to another's (libgcc-s1 -> gcc-12-base) takes its
  # copyright from that one, which is then recorded too.
  mkdir -p "$rootfs/var/lib/dpkg/status.d"
  local records=("${!packages[@]}") doc
  while ((${#records[@]})); do
    pkg="${records[0]}"
    records=("${records[@]:1}")
    [[ -d "$debs/$pkg" ]] || { mkdir -p "$debs/$pkg" && dpkg-deb -x "$(fetch_deb "$pkg")" "$debs/$pkg"; }
    packages[$pkg]=1
    dpkg-deb -f "$(fetch_deb "$pkg")" >"$rootfs/var/lib/dpkg/status.d/$pkg"
    if doc="$(readlink "$debs/$pkg/usr/share/doc/$pkg")"; then
      copy_path "$debs/$pkg" "$rootfs" "/usr/share/doc/$pkg"
      [[ -n "${packages[$(basename "$doc")]:-}" ]] || records+=("$(basename "$doc")")
      continue
    fi
    copy_path "$debs/$pkg" "$rootfs" "/usr/share/doc/$pkg/copyright" ||
      die "$pkg has no /usr/share/doc/$pkg/copyright"
  done

  # Users, name service, home, /tmp, the binary.
  printf '%s\n' "root:x:0:0:root:/root:/sbin/nologin" \
    "nonroot:x:$UID_NONROOT:$UID_NONROOT:nonroot:/home/nonroot:/sbin/nologin" >"$rootfs/etc/passwd"
  printf '%s\n' "root:x:0:" "nonroot:x:$UID_NONROOT:" >"$rootfs/etc/group"
  printf '%s\n' "passwd: files" "group: files" "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
  mkdir -p "$rootfs/home/nonroot" "$rootfs/tmp" "$rootfs/root" "$rootfs/usr/local/bin"
  install -m 0755 "$binary" "$rootfs/usr/local/bin/tagpin"

  chown -R 0:0 "$rootfs"
  find "$rootfs" -type d -exec chmod 0755 {} +
  chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf} "$rootfs/etc/ssl/certs/ca-certificates.crt"
  chmod 0700 "$rootfs/root" "$rootfs/home/nonroot"
  chmod 1777 "$rootfs/tmp"
  chown "$UID_NONROOT:$UID_NONROOT" "$rootfs/home/nonroot"
  printf '%s\n' "${!packages[@]}" | sort
}

# layer ROOTFS TAR: a reproducible tar of ROOTFS (sorted names, fixed mtimes, numeric owners).
layer() {
  tar --create --file="$2" --directory="$1" --sort=name --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner .
}

# check REF: the image runs as uid 65532 on a read-only root with only /tmp writable, its
# libraries are complete, and it has no shell and no package manager.
check() {
  local ref="$1" root="$WORK/check" user entrypoint version
  crane_auth
  rm -rf "$root" && mkdir -p "$root"
  crane export "$ref" - | tar -x -C "$root"
  for f in bin/sh bin/bash usr/bin/sh usr/bin/dash usr/bin/apt usr/bin/dpkg sbin/apk; do
    [[ ! -e "$root/$f" ]] || die "$ref ships /$f"
  done
  user="$(crane config "$ref" | jq -r .config.User)"
  entrypoint="$(crane config "$ref" | jq -c .config.Entrypoint)"
  [[ "$user" == "$UID_NONROOT:$UID_NONROOT" ]] || die "$ref runs as '$user', not $UID_NONROOT:$UID_NONROOT"
  [[ "$entrypoint" == '["/usr/local/bin/tagpin"]' ]] || die "$ref has entrypoint $entrypoint"
  # A private mount namespace: the root bind-mounted read-only, a tmpfs on /tmp as the
  # Deployment mounts it, then the entrypoint as uid 65532 with an empty environment.
  version="$(unshare --mount --propagation private -- bash -euo pipefail -c '
    root="$1" chroot="$2"
    mount --bind "$root" "$root"
    mount -o remount,bind,ro "$root"
    mount -t tmpfs -o size=16m tmpfs "$root/tmp"
    run() { env -i "$chroot" --userspec=65532:65532 "$root" /usr/local/bin/tagpin "$@"; }
    run --version
    run certs --out /tmp/certs >/dev/null
    [[ "$(stat -c %u:%g "$root/tmp/certs/tls.key")" == 65532:65532 ]]
    run ref example.com/app:1 >/dev/null
    if run certs --out /etc/x >/dev/null 2>&1; then
      echo "the root file system is writable" >&2
      exit 1
    fi
  ' check "$root" "$(command -v chroot)")" || die "$ref does not run as uid $UID_NONROOT on a read-only root"
  [[ "$version" == "tagpin $VERSION" ]] || die "$ref prints '$version', expected 'tagpin $VERSION'"
  log "checked $ref: $version runs as $UID_NONROOT on a read-only root; no shell, no package manager"
}

build() {
  command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null || die "needs Debian's apt-get and dpkg-deb"
  command -v jq >/dev/null || die "jq missing: run hack/tools.sh"
  [[ -x "$TAGPIN_CRANE" ]] || hack/tools.sh
  [[ -x "$TAGPIN_CRANE" ]] || die "crane missing at $TAGPIN_CRANE"

  local revision dirty="" tag binary ref digest size
  revision="$(git rev-parse HEAD)"
  git diff --quiet HEAD -- || dirty=-dirty
  tag="${TAGPIN_IMAGE_TAG:-$VERSION-${revision:0:12}$dirty}"
  # Built before SOURCE_DATE_EPOCH is exported: aws-lc-sys's build script watches it, so
  # exporting it first would rebuild the release binary for every commit.
  binary="$(release_binary)"
  export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
  [[ "$("$binary" --version)" == "tagpin $VERSION" ]] || die "$binary is not tagpin $VERSION"

  mkdir -p "$WORK"
  log "assembling the root file system from Debian packages"
  local packages
  packages="$(assemble "$binary" "$WORK/rootfs")"
  layer "$WORK/rootfs" "$WORK/layer.tar"
  size="$(du -sh --apparent-size "$WORK/layer.tar" | cut -f1)"
  log "layer: $size uncompressed; packages: $(echo $packages)"

  crane_auth
  ref="$IMAGE_REPO:$tag"
  # crane append pushes the layer on an empty OCI base; mutate then writes the final config
  # and moves the tag to it (the intermediate manifest stays untagged).
  crane append --oci-empty-base -f "$WORK/layer.tar" -t "$ref" >/dev/null
  crane mutate "$ref" -t "$ref" \
    --set-platform "linux/$(dpkg --print-architecture)" \
    --user "$UID_NONROOT:$UID_NONROOT" \
    --entrypoint /usr/local/bin/tagpin \
    --workdir /home/nonroot \
    --env PATH=/usr/local/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label "org.opencontainers.image.source=$SOURCE_URL" \
    --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    --label "org.opencontainers.image.title=tagpin" \
    --label "org.opencontainers.image.created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" \
    --annotation "org.opencontainers.image.source=$SOURCE_URL" \
    --annotation "org.opencontainers.image.version=$VERSION" \
    --annotation "org.opencontainers.image.revision=$revision" >/dev/null
  digest="$(crane digest "$ref")"
  [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || die "crane gave no digest for $ref: $digest"
  check "$ref@$digest"

  cat >"$ENV_FILE" <<EOF
export TAGPIN_IMAGE='$ref@$digest'
export TAGPIN_IMAGE_REPO='$IMAGE_REPO'
export TAGPIN_IMAGE_TAG='$tag'
export TAGPIN_IMAGE_DIGEST='$digest'
EOF
  log "pushed $ref@$digest; env in $ENV_FILE"
  echo "$ref@$digest"
}

# prepare: everything that downloads (the release build's crates, Debian's packages), so that
# `build` then runs where only the registry is reachable (the local cluster's namespace).
prepare() {
  command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null || die "needs Debian's apt-get and dpkg-deb"
  [[ -x "$TAGPIN_CRANE" ]] || hack/tools.sh
  local binary
  binary="$(release_binary)"
  mkdir -p "$WORK"
  # As build calls it: in a command substitution (a doc symlink into another package is
  # allowed to dangle there).
  local packages
  packages="$(assemble "$binary" "$WORK/rootfs")"
  log "prepared ($(echo $packages)): release binary built, Debian packages in $DEB_CACHE"
}

case "${1:-build}" in
  build) build ;;
  prepare) prepare ;;
  check) [[ -n "${2:-}" ]] || die "usage: $0 check REF"; command -v jq >/dev/null || die "jq missing"; check "$2" ;;
  *) die "usage: $0 [build | prepare | check REF]" ;;
esac
