#!/usr/bin/env bash
# Builds the Debian packages: target/debian/minga_<version>_amd64.deb and ..._arm64.deb, each
# with a stripped release binary linked against glibc 2.31 at most (Raspberry Pi OS and Debian
# Bullseye), the systemd unit, /etc/minga/config.toml, man pages and shell completions.
# Installs what it lacks: cargo-deb, cargo-zigbuild and zig, and, where rustup has no standard
# library for a target (rustup cannot download one offline), Debian's rustc-web with its std
# for both architectures.
#
#   packaging/build-deb.sh                 # both packages
#   packaging/build-deb.sh arm64           # one
#   DEB_REVISION=2 packaging/build-deb.sh --no-build   # repackage the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."

# Raspberry Pi OS Bullseye's glibc: the oldest system the packages must run on.
readonly GLIBC=2.31
declare -A TRIPLE=([amd64]=x86_64-unknown-linux-gnu [arm64]=aarch64-unknown-linux-gnu)
RUST_VERSION=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
readonly RUST_VERSION

build=1
arches=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    amd64 | arm64) arches+=("$arg") ;;
    *) echo "usage: $0 [--no-build] [amd64] [arm64]" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

step() { printf '\n== %s\n' "$*"; }

apt_install() {
  step "apt-get install $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

# One compiler for every package, so the build scripts and proc macros are built once: $RUSTC
# when set, else rustup's when it has, or can download, the std of every target asked for, else
# Debian's rustc-web.
choose_rustc() {
  if [ -n "${RUSTC:-}" ]; then
    echo "rustc: $RUSTC, as RUSTC says ($("$RUSTC" --version))"
    return
  fi
  local installed missing=()
  installed=$(rustup target list --installed 2>/dev/null || true)
  for arch in "${arches[@]}"; do
    grep -qx "${TRIPLE[$arch]}" <<<"$installed" || missing+=("${TRIPLE[$arch]}")
  done
  if [ ${#missing[@]} -gt 0 ] && command -v rustup >/dev/null; then
    step "rustup target add ${missing[*]}"
    timeout 600 rustup target add "${missing[@]}" && missing=()
  fi
  if [ ${#missing[@]} = 0 ]; then
    echo "rustc: rustup's $(rustc --version)"
    return
  fi
  local debian_arches=()
  for arch in "${arches[@]}"; do
    dpkg -s "libstd-rust-web-dev:$arch" >/dev/null 2>&1 || debian_arches+=("libstd-rust-web-dev:$arch")
  done
  if [ ${#debian_arches[@]} -gt 0 ] || [ ! -x /usr/bin/rustc ]; then
    for arch in "${arches[@]}"; do
      dpkg --print-foreign-architectures | grep -qx "$arch" || [ "$(dpkg --print-architecture)" = "$arch" ] ||
        dpkg --add-architecture "$arch"
    done
    apt_install rustc-web "${debian_arches[@]}"
  fi
  export RUSTC=/usr/bin/rustc
  local have
  have=$("$RUSTC" --version | cut -d' ' -f2)
  version_at_least "$have" "$RUST_VERSION" ||
    { echo "Debian's rustc is $have; the workspace needs $RUST_VERSION" >&2; exit 1; }
  echo "rustc: Debian's $("$RUSTC" --version) (rustup has no std for ${arches[*]})"
}

install_tools() {
  if ! command -v cargo-zigbuild >/dev/null || ! { command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1; }; then
    step "pip install cargo-zigbuild ziglang"
    python3 -m pip install --quiet cargo-zigbuild ziglang
  fi
  if ! command -v cargo-deb >/dev/null; then
    step "cargo install cargo-deb"
    cargo install cargo-deb --locked
  fi
  command -v gzip >/dev/null || apt_install gzip
}

# The stripped release binary, linked against glibc $GLIBC (zig supplies that glibc's symbols).
build_binary() {
  local triple=$1
  step "cargo zigbuild --release --target $triple.$GLIBC"
  local start=$SECONDS
  cargo zigbuild --release --locked -p minga --target "$triple.$GLIBC"
  echo "built $triple in $((SECONDS - start)) s"
}

# Fails when the binary asks the C library for anything newer than $GLIBC.
check_glibc() {
  local bin=$1 newest
  newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  echo "$bin: newest glibc symbol version $newest"
  version_at_least "$GLIBC" "$newest" || { echo "needs glibc $newest, more than $GLIBC" >&2; exit 1; }
}

# Man pages and completions, generated on the build machine from the CLI's clap definition.
generate_pages() {
  local out="$target_dir/packaging"
  step "man pages and completions"
  rm -rf "$out"
  (unset RUSTC; cargo run --quiet --locked -p minga --example man_and_completions -- "$out")
  gzip -9n "$out"/man/*.1
}

package() {
  local arch=$1 triple=${TRIPLE[$1]}
  local release="$target_dir/$triple/release"
  check_glibc "$release/minga"
  rm -rf "$release/packaging"
  cp -r "$target_dir/packaging" "$release/packaging"
  step "cargo deb --target $triple"
  cargo deb -p minga --no-build --no-strip --target "$triple" --output "$target_dir/debian/" \
    ${DEB_REVISION:+--deb-revision "$DEB_REVISION"}
}

# Stripped, without the line tables the release profile keeps for developers' backtraces.
export CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=false

install_tools
[ $build = 0 ] || choose_rustc
for arch in "${arches[@]}"; do
  [ $build = 0 ] || build_binary "${TRIPLE[$arch]}"
done
generate_pages
for arch in "${arches[@]}"; do
  package "$arch"
done

step "sizes"
for arch in "${arches[@]}"; do
  ls -l "$target_dir/${TRIPLE[$arch]}/release/minga" "$target_dir"/debian/minga_*_"$arch".deb
done
