#!/usr/bin/env bash
# Measure the question round trip of `dispatch run`: the time from the
# rename that puts a worker's `NNN.question` in place to the appearance of
# `NNN.answer`, when a manifest answer rule matches the question.
#   1. one worker asking QUESTIONS questions, one after the other;
#   2. LOAD_TASKS such workers at once (concurrency LOAD_TASKS), asking
#      LOAD_QUESTIONS questions each, to show the latency under load.
# The worker is a small Python program (standard library only) that takes
# the time with time.monotonic_ns() right after its rename and polls for the
# answer every 0.5 ms. Each variant runs RUNS times; min, median, p95, p99
# and max are over all questions of all runs. The result is a Markdown table
# on stdout; progress goes to stderr.
#
# This is a benchmark, not a test: it fails only when a step fails (a run
# that does not exit 0, a worker that got no answer or a wrong one, missing
# measurements), never because a number is large.
#
# Environment:
#   RUNS=3              repetitions of each variant
#   QUESTIONS=200       questions asked by the single worker
#   LOAD_TASKS=20       workers asking at once in the load variant
#   LOAD_QUESTIONS=20   questions asked by each of them
#   ANSWER_TIMEOUT=30   seconds a worker waits for one answer before failing
#   DISPATCH=path       the binary to measure (default: target/release/dispatch)

set -euo pipefail

RUNS=${RUNS:-3}
QUESTIONS=${QUESTIONS:-200}
LOAD_TASKS=${LOAD_TASKS:-20}
LOAD_QUESTIONS=${LOAD_QUESTIONS:-20}
ANSWER_TIMEOUT=${ANSWER_TIMEOUT:-30}
# The issue's target: an answer within this many ms of the question's rename.
TARGET_MS=100
# What the rule answers, and what the workers check they got.
ANSWER_TEXT="go ahead"

STEP="starting"
RUN_MEDIAN=
TMPDIRS=()
BGPIDS=()

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in RUNS QUESTIONS LOAD_TASKS LOAD_QUESTIONS ANSWER_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# --- cleanup ----------------------------------------------------------------

# Process-tree helpers shared with the other benchmark.
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    local status=$? pid dir
    trap - EXIT INT TERM ERR
    for pid in "${BGPIDS[@]+"${BGPIDS[@]}"}"; do
        stop_tree "$pid"
    done
    for dir in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
        rm -rf -- "$dir"
    done
    if ((status != 0)); then
        log "error: benchmark failed during: $STEP (exit status $status)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR

# Make a fresh temporary folder in $dir (not through $(...): the list the
# exit trap cleans up must be updated in this shell).
new_tmp() {
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dispatch-bench.XXXXXX")
    TMPDIRS+=("$dir")
}

drop_tmp() {
    local dir=$1 keep=() d
    rm -rf -- "$dir"
    for d in "${TMPDIRS[@]}"; do [[ $d == "$dir" ]] || keep+=("$d"); done
    TMPDIRS=("${keep[@]+"${keep[@]}"}")
}

forget_pid() {
    local pid=$1 keep=() p
    for p in "${BGPIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    BGPIDS=("${keep[@]+"${keep[@]}"}")
}

# --- helpers ----------------------------------------------------------------

# Median of numbers given one per line on stdin (mean of the middle two for
# an even count).
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }
calc() { awk "BEGIN { printf \"%.${1}f\", $2 }"; }

# One Markdown row of statistics for the latencies (ms) in file $1: count,
# min, median, p95, p99 (nearest rank), max, and how many exceed TARGET_MS.
stats_row() {
    sort -g "$1" | awk -v target="$TARGET_MS" '
        { v[NR] = $1; if ($1 > target) over++ }
        function rank(p,   r) { r = int(p * NR); if (r < p * NR) r++; if (r < 1) r = 1; return v[r] }
        END {
            med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%d | %.2f | %.2f | %.2f | %.2f | %.2f | %d (%.1f%%)",
                NR, v[1], med, rank(0.95), rank(0.99), v[NR], over, 100 * over / NR
        }'
}

# The worker: asks its questions one after the other and measures each round
# trip. Arguments: the number of questions. Output ($DISPATCH_OUTPUT): one
# latency in ms per line, in the order asked.
write_asker() {
    cat >"$1" <<'PY'
import os
import sys
import time

count = int(sys.argv[1])
expected = sys.argv[2]
timeout_ns = int(sys.argv[3]) * 1_000_000_000
ipc = os.environ["DISPATCH_IPC_DIR"]
# Not a sequence number, so dispatch ignores it until the rename.
tmp = os.path.join(ipc, "bench.tmp")
latencies = []
for i in range(1, count + 1):
    seq = f"{i:03}"  # 001 … 999, then 1000: the numbering dispatch expects
    question = os.path.join(ipc, seq + ".question")
    answer = os.path.join(ipc, seq + ".answer")
    with open(tmp, "w") as f:
        f.write(f"Question {i} of {count}: shall I proceed?\n")
    os.rename(tmp, question)
    start = time.monotonic_ns()
    while not os.path.exists(answer):
        if time.monotonic_ns() - start > timeout_ns:
            sys.exit(f"asker: no answer to {seq}.question within {timeout_ns // 10**9} s")
        time.sleep(0.0005)
    end = time.monotonic_ns()
    with open(answer) as f:
        text = f.read().strip()
    if text != expected:
        sys.exit(f"asker: {seq}.answer says {text!r}, expected {expected!r}")
    open(os.path.join(ipc, seq + ".done"), "w").close()
    latencies.append((end - start) / 1e6)

with open(os.environ["DISPATCH_OUTPUT"], "w") as f:
    f.write("".join(f"{ms:.3f}\n" for ms in latencies))
plan = os.environ["DISPATCH_PLAN"]
with open(plan) as f:
    text = f.read()
with open(plan + ".tmp", "w") as f:
    f.write(text.replace("- [ ]", "- [x]"))
os.rename(plan + ".tmp", plan)
open(os.path.join(ipc, ".done"), "w").close()
PY
}

write_manifest() {
    local file=$1 tasks=$2 questions=$3 i
    {
        printf 'version: 1\nname: question-latency\nconcurrency: %s\n' "$tasks"
        printf 'questions:\n  answers: [{ keywords: [proceed], answer: %s }]\ntasks:\n' "$ANSWER_TEXT"
        for ((i = 0; i < tasks; i++)); do
            printf '  asker%02d:\n    command: [python3, asker.py, "%s", "%s", "%s"]\n    plan: [Ask]\n' \
                "$i" "$questions" "$ANSWER_TEXT" "$ANSWER_TIMEOUT"
        done
    } >"$file"
}

# Run one variant once: $1 tasks asking $2 questions each. Appends every
# latency to $3 and sets RUN_MEDIAN to the run's median (not printed: called
# through $(...), the temporary folder and the run's pid would be recorded
# in a subshell, out of the exit trap's reach).
run_variant() {
    local tasks=$1 questions=$2 out=$3 pid status n output
    new_tmp
    write_asker "$dir/asker.py"
    write_manifest "$dir/sweep.yaml" "$tasks" "$questions"
    # The workers run in the root (their default workdir), where asker.py is.
    (cd "$dir" && exec "$BIN" run --quiet --root "$dir" sweep.yaml >"$dir/stdout.txt" 2>"$dir/stderr.txt") &
    pid=$!
    BGPIDS+=("$pid")
    status=0
    wait "$pid" || status=$?
    forget_pid "$pid"
    if ((status != 0)); then
        log "--- dispatch stdout ---"
        tail -n 20 "$dir/stdout.txt" >&2 || true
        log "--- dispatch stderr ---"
        tail -n 20 "$dir/stderr.txt" >&2 || true
        die "dispatch run exited with status $status (expected 0)"
    fi
    : >"$dir/run.txt"
    for output in "$dir"/.dispatch/tasks/*/output.md; do
        [[ -f $output ]] || die "a worker wrote no output.md"
        n=$(grep -cE '^[0-9]+(\.[0-9]+)?$' "$output" || true)
        ((n == questions)) || die "$output holds $n latencies, expected $questions"
        grep -E '^[0-9]+(\.[0-9]+)?$' "$output" >>"$dir/run.txt"
    done
    n=$(wc -l <"$dir/run.txt")
    ((n == tasks * questions)) || die "got $n latencies, expected $((tasks * questions))"
    cat "$dir/run.txt" >>"$out"
    RUN_MEDIAN=$(median <"$dir/run.txt")
    drop_tmp "$dir"
}

# --- setup ------------------------------------------------------------------

STEP="locating the dispatch binary"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${DISPATCH:-$REPO/target/release/dispatch}
if [[ ! -x $BIN ]]; then
    [[ -z ${DISPATCH:-} ]] || die "DISPATCH=$BIN is not an executable"
    STEP="building the release binary (cargo build --release)"
    log "The release binary is missing; building it."
    (cd "$REPO" && cargo build --release) >&2
    [[ -x $BIN ]] || die "cargo build --release did not produce target/release/dispatch"
fi
for tool in python3 sort awk grep mktemp; do
    command -v "$tool" >/dev/null 2>&1 || die "this benchmark needs '$tool'"
done
TMP_BASE=${TMPDIR:-/tmp}
TMP_FS=$(df --output=fstype "$TMP_BASE" 2>/dev/null | tail -n 1 || true)
[[ -n $TMP_FS ]] || TMP_FS=$(stat -f -c %T "$TMP_BASE" 2>/dev/null || echo unknown)

log "dispatch: $BIN ($("$BIN" --version 2>&1 | head -n 1 || true))"
log "temporary folders: under TMPDIR ($TMP_FS)"
log "runs: $RUNS; single: 1 worker × $QUESTIONS questions; load: $LOAD_TASKS workers × $LOAD_QUESTIONS questions at concurrency $LOAD_TASKS"

# The collected latencies live in a temporary folder of their own.
new_tmp
RESULTS=$dir
: >"$RESULTS/single.txt"
: >"$RESULTS/load.txt"

# --- measurements -------------------------------------------------------------

SINGLE_MEDIANS=()
LOAD_MEDIANS=()
for ((run = 1; run <= RUNS; run++)); do
    STEP="single worker, run $run"
    run_variant 1 "$QUESTIONS" "$RESULTS/single.txt"
    SINGLE_MEDIANS+=("$RUN_MEDIAN")
    log "run $run/$RUNS: single worker, median ${SINGLE_MEDIANS[-1]} ms over $QUESTIONS questions"

    STEP="$LOAD_TASKS workers at once, run $run"
    run_variant "$LOAD_TASKS" "$LOAD_QUESTIONS" "$RESULTS/load.txt"
    LOAD_MEDIANS+=("$RUN_MEDIAN")
    log "run $run/$RUNS: $LOAD_TASKS workers, median ${LOAD_MEDIANS[-1]} ms over $((LOAD_TASKS * LOAD_QUESTIONS)) questions"
done

# --- report -----------------------------------------------------------------

STEP="writing the report"
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)

echo
echo "| Variant | Questions | Min (ms) | Median (ms) | p95 (ms) | p99 (ms) | Max (ms) | Over ${TARGET_MS} ms | Run medians ($RUNS runs, ms) |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| 1 worker × $QUESTIONS questions | $(stats_row "$RESULTS/single.txt") | $(printf '%s\n' "${SINGLE_MEDIANS[@]}" | minmax) |"
echo "| $LOAD_TASKS workers × $LOAD_QUESTIONS questions, concurrency $LOAD_TASKS | $(stats_row "$RESULTS/load.txt") | $(printf '%s\n' "${LOAD_MEDIANS[@]}" | minmax) |"
echo
echo "Round trip: from the rename of NNN.question to NNN.answer existing, seen by a worker polling every 0.5 ms. The issue's target: an answer within ${TARGET_MS} ms of its rename."
echo
echo "Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); temporary folders on $TMP_FS; $("$BIN" --version); $(python3 --version 2>&1); $(date -u '+%Y-%m-%d %H:%M UTC')."
