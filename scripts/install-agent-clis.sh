#!/usr/bin/env bash
# Installs the agent CLIs that the real-CLI test tier (tests/real_cli.rs)
# drives, with npm, into a project-local prefix: .agent-clis/ at the
# repository root (override with AGENT_CLIS_PREFIX). Nothing is installed
# globally and no user configuration is touched.
#
#   scripts/install-agent-clis.sh            # install if missing, print where
#   scripts/install-agent-clis.sh --force    # reinstall
#
# Idempotent: when the CLI is already there and runs, it only prints where
# it is. Exits non-zero with a message if npm is missing or the install fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${AGENT_CLIS_PREFIX:-$root/.agent-clis}"
package="@anthropic-ai/claude-code"
# Pinned to the version the tier was written against, so CI is repeatable;
# CLAUDE_CODE_VERSION=latest tries the newest.
version="${CLAUDE_CODE_VERSION:-2.1.332}"
force=0

for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "install-agent-clis: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

claude_bin="$prefix/bin/claude"

# The CLI is usable when it answers --version; then there is nothing to do.
if [ "$force" = 0 ] && [ -x "$claude_bin" ] && "$claude_bin" --version >/dev/null 2>&1; then
    echo "claude: $claude_bin ($("$claude_bin" --version 2>/dev/null | head -n 1))"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-agent-clis: npm not found; install Node.js and npm (e.g. apt-get install nodejs npm), then run this again" >&2
    exit 1
fi

mkdir -p "$prefix"
echo "install-agent-clis: installing $package@$version into $prefix ..." >&2
start=$(date +%s)
# --prefix keeps it local; no audit, no funding notice, no update check.
if ! npm install --global --prefix "$prefix" --no-audit --no-fund \
        --loglevel=error "$package@$version" >&2; then
    echo "install-agent-clis: npm install of $package failed (see the npm output above)" >&2
    exit 1
fi

if [ ! -x "$claude_bin" ] || ! "$claude_bin" --version >/dev/null 2>&1; then
    echo "install-agent-clis: $package installed, but $claude_bin does not run (claude --version failed)" >&2
    exit 1
fi

echo "install-agent-clis: done in $(( $(date +%s) - start ))s, $(du -sh "$prefix" | cut -f1) in $prefix" >&2
echo "claude: $claude_bin ($("$claude_bin" --version 2>/dev/null | head -n 1))"
