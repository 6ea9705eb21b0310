#!/usr/bin/env bash
# Installs the agent CLIs that the real-CLI test tier (tests/real_cli*.rs)
# drives into a project-local prefix: .agent-clis/ at the repository root
# (override with AGENT_CLIS_PREFIX). npm packages go under its bin/, aider
# into a virtual environment under aider-venv/. Nothing is installed
# globally and no user configuration is touched.
#
#   scripts/install-agent-clis.sh                 # install what is missing
#   scripts/install-agent-clis.sh claude codex    # only these
#   scripts/install-agent-clis.sh --force         # reinstall
#
# Versions are pinned to the ones the tier was written against, so CI is
# repeatable; set e.g. CLAUDE_CODE_VERSION=latest to try the newest.
# Idempotent: a CLI that is there and answers --version is left alone.
# Each CLI is installed on its own; the exit status is 1 if any failed
# (their tests then say they skip), 0 otherwise.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${AGENT_CLIS_PREFIX:-$root/.agent-clis}"
force=0
wanted=()

for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        claude|codex|gemini|opencode|aider) wanted+=("$arg") ;;
        *)
            echo "install-agent-clis: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done
if [ ${#wanted[@]} -eq 0 ]; then
    wanted=(claude codex gemini opencode aider)
fi

# program -> npm package@version
npm_package() {
    case "$1" in
        claude) echo "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION:-2.1.332}" ;;
        codex) echo "@openai/codex@${CODEX_VERSION:-0.169.0}" ;;
        gemini) echo "@google/gemini-cli@${GEMINI_CLI_VERSION:-0.61.0}" ;;
        opencode) echo "opencode-ai@${OPENCODE_VERSION:-1.18.33}" ;;
    esac
}

bin_of() {
    case "$1" in
        aider) echo "$prefix/aider-venv/bin/aider" ;;
        *) echo "$prefix/bin/$1" ;;
    esac
}

works() {
    [ -x "$1" ] && "$1" --version >/dev/null 2>&1
}

install_npm() {
    local program="$1" package
    package="$(npm_package "$program")"
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-agent-clis: npm not found; install Node.js and npm, then run this again" >&2
        return 1
    fi
    mkdir -p "$prefix"
    echo "install-agent-clis: installing $package into $prefix ..." >&2
    npm install --global --prefix "$prefix" --no-audit --no-fund \
        --loglevel=error "$package" >&2
}

install_aider() {
    if ! command -v python3 >/dev/null 2>&1; then
        echo "install-agent-clis: python3 not found" >&2
        return 1
    fi
    echo "install-agent-clis: installing aider-chat into $prefix/aider-venv ..." >&2
    python3 -m venv "$prefix/aider-venv" >&2 &&
        "$prefix/aider-venv/bin/pip" install --quiet --disable-pip-version-check \
            "aider-chat==${AIDER_VERSION:-0.86.2}" >&2
}

failed=0
for program in "${wanted[@]}"; do
    bin="$(bin_of "$program")"
    if [ "$force" = 0 ] && works "$bin"; then
        echo "$program: $bin ($("$bin" --version 2>/dev/null | head -n 1))"
        continue
    fi
    start=$(date +%s)
    case "$program" in
        aider) install_aider ;;
        *) install_npm "$program" ;;
    esac
    if works "$bin"; then
        echo "install-agent-clis: $program installed in $(( $(date +%s) - start ))s" >&2
        echo "$program: $bin ($("$bin" --version 2>/dev/null | head -n 1))"
    else
        echo "install-agent-clis: $program could not be installed (see above); its tests will skip" >&2
        failed=1
    fi
done
exit "$failed"
