#!/usr/bin/env bash
# Type-checks dispatch (library, binary, tests, benches) for macOS from a
# Linux machine, where no macOS C toolchain or SDK exists. Nothing is
# linked by `cargo check`, so the C parts of libgit2-sys and libz-sys need
# not really be compiled: a stand-in C compiler writes empty objects, and
# libgit2 is "found" through a stand-in pkg-config file. What this proves
# is that every cfg gate and every libc/rustix call of ours exists on
# macOS; the macOS job in .github/workflows/ci.yml runs the tests there.
#
#   scripts/check-macos.sh                  # x86_64-apple-darwin
#   TARGET=aarch64-apple-darwin scripts/check-macos.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${TARGET:-x86_64-apple-darwin}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rustup target add "$target" >/dev/null

cat > "$work/cc" <<'CC'
#!/bin/sh
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    -o*) out="${1#-o}" ;;
  esac
  shift
done
[ -n "$out" ] && mkdir -p "$(dirname "$out")" && : > "$out"
exit 0
CC
chmod +x "$work/cc"
mkdir -p "$work/pkgconfig"
printf 'Name: libgit2\nDescription: stand-in\nVersion: 1.9.7\nLibs: -lgit2\nCflags:\n' > "$work/pkgconfig/libgit2.pc"

env_target="$(echo "$target" | tr '-' '_')"
export "CC_${env_target}=$work/cc" "AR_${env_target}=ar"
export PKG_CONFIG_PATH="$work/pkgconfig" PKG_CONFIG_ALLOW_CROSS=1 LIBGIT2_NO_VENDOR=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/check-macos}"
cd "$root"
cargo check --target "$target" --all-targets
echo "check-macos: $target type-checks"
