#!/usr/bin/env bash
# Measure what `dispatch run` itself costs, in one go so the numbers are
# comparable:
#   1. spawn overhead: 1000 tasks whose worker exits at once, concurrency 8,
#      against `xargs -P 8` running the same 1000 `sh -c` processes, and
#      against a bare tokio spawner (benches/spawn_floor.rs) that supervises
#      them as any runner must (process groups, output pipes drained) and
#      does nothing else, and against the same spawner keeping the least
#      state the run issue asks for (its second mode);
#   2. peak memory (max RSS) of that dispatch run;
#   3. idle cost: the CPU dispatch uses while 100 workers sleep.
# Each measurement is repeated RUNS times and the median is reported. The
# result is a Markdown table on stdout; progress goes to stderr.
#
# This is a benchmark, not a test: it fails only when a step fails (a run
# that does not exit as expected, a worker that did not run), never because
# a number is large.
#
# Environment:
#   RUNS=5            repetitions of each measurement
#   IDLE_SECONDS=30   length of the idle CPU window
#   TASKS=1000        tasks in the spawn benchmark
#   CONCURRENCY=8     concurrency of the spawn benchmark (dispatch and xargs)
#   IDLE_TASKS=100    sleeping workers in the idle benchmark
#   MEM_METHOD=auto   auto | time (GNU time -v) | proc (poll VmHWM) | skip
#   DISPATCH=path     the binary to measure (default: target/release/dispatch)
#   FLOOR=auto        auto: build and run the bare spawner with cargo; skip

set -euo pipefail

RUNS=${RUNS:-5}
IDLE_SECONDS=${IDLE_SECONDS:-30}
TASKS=${TASKS:-1000}
CONCURRENCY=${CONCURRENCY:-8}
IDLE_TASKS=${IDLE_TASKS:-100}
MEM_METHOD=${MEM_METHOD:-auto}
FLOOR=${FLOOR:-auto}
GNU_TIME=/usr/bin/time
# The command every worker runs, on both sides of the comparison.
WORKER=': > "$DISPATCH_IPC_DIR/.done"'

STEP="starting"
TMPDIRS=()
BGPIDS=()
PAUSE_PID=

# A sleep the exit traps can interrupt (bash runs traps during `wait`, but
# only after a foreground command ends).
pause() {
    sleep "$1" &
    PAUSE_PID=$!
    wait "$PAUSE_PID" || true
    PAUSE_PID=
}

log() { printf '%s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in RUNS IDLE_SECONDS TASKS CONCURRENCY IDLE_TASKS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# --- cleanup ----------------------------------------------------------------

# Process-tree helpers shared with the other benchmark.
# shellcheck source=benches/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    local status=$? pid dir
    trap - EXIT INT TERM ERR
    [[ -z $PAUSE_PID ]] || kill "$PAUSE_PID" 2>/dev/null || true
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

# Microseconds since the epoch.
now_us() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/,/.}
        printf '%s\n' "${t/./}"
    else
        echo $(($(date +%s%N) / 1000))
    fi
}

# Microseconds since the epoch of an event's "ts" (RFC 3339, UTC).
event_us() { date -u -d "$1" +%s%6N; }

# Where a dispatch run's wall time went, from its events.jsonl: the time
# before its first worker started (start-up, manifest, plans, task
# folders), and after its last worker ended (reports, exit). The rest is
# the part workers ran in. Prints "BEFORE_MS AFTER_MS".
split_phases() {
    local events=$1 start=$2 end=$3 first last
    first=$(grep -m 1 '"event":"task-started"' "$events" | sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
    last=$(grep '"event":"task-ended"' "$events" | tail -n 1 | sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
    [[ -n $first && -n $last ]] || die "no task-started or task-ended event in $events"
    echo "$(calc 1 "($(event_us "$first") - $start) / 1000") $(calc 1 "($end - $(event_us "$last")) / 1000")"
}

# Median of numbers given one per line on stdin (mean of the middle two for
# an even count).
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
calc() { awk "BEGIN { printf \"%.${1}f\", $2 }"; }

# utime + stime of one process, in clock ticks.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat") || die "process $1 is gone"
    stat=${stat##*) }          # the fields after the command name
    # shellcheck disable=SC2086
    set -- $stat               # $1 is field 3 (state): utime is 14, stime 15
    echo $((${12} + ${13}))
}

write_spawn_manifest() {
    local file=$1 i
    {
        printf 'version: 1\nname: spawn-bench\nconcurrency: %s\ntasks:\n' "$CONCURRENCY"
        for ((i = 0; i < TASKS; i++)); do
            printf '  t%04d:\n    command: [sh, -c, %s]\n    plan: [Do nothing]\n' \
                "$i" "'$WORKER'"
        done
    } >"$file"
}

write_idle_manifest() {
    local file=$1 seconds=$2 i
    {
        printf 'version: 1\nname: idle-bench\nconcurrency: %s\ntasks:\n' "$IDLE_TASKS"
        for ((i = 0; i < IDLE_TASKS; i++)); do
            printf '  s%04d:\n    command: [sleep, "%s"]\n    plan: [Sleep]\n' "$i" "$seconds"
        done
    } >"$file"
}

count_done() { find "$1/.dispatch/tasks" -path '*/ipc/.done' | wc -l; }

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
for tool in xargs seq getconf sort awk find mktemp; do
    command -v "$tool" >/dev/null 2>&1 || die "this benchmark needs '$tool'"
done
CLK_TCK=$(getconf CLK_TCK)
FLOOR_BIN=
case $FLOOR in
auto)
    if command -v cargo >/dev/null 2>&1; then
        STEP="building the bare spawner (cargo bench --bench spawn_floor --no-run)"
        FLOOR_BIN=$(cd "$REPO" && cargo bench --bench spawn_floor --no-run --message-format=json 2>/dev/null |
            sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
        [[ -x $FLOOR_BIN ]] || die "cargo did not build benches/spawn_floor.rs"
    else
        log "note: no cargo on PATH, so the bare spawner is left out (FLOOR=skip)"
    fi
    ;;
skip) ;;
*) die "FLOOR must be auto or skip" ;;
esac
# The state dispatch writes (two folders and about five files per task, some
# replaced atomically several times) lands in the temporary folders, so
# their filesystem matters: report it.
TMP_BASE=${TMPDIR:-/tmp}
TMP_FS=$(df --output=fstype "$TMP_BASE" 2>/dev/null | tail -n 1 || true)
[[ -n $TMP_FS ]] || TMP_FS=$(stat -f -c %T "$TMP_BASE" 2>/dev/null || echo unknown)

case $MEM_METHOD in
auto)
    if [[ -x $GNU_TIME ]] && "$GNU_TIME" -v true >/dev/null 2>&1; then
        MEM_METHOD=time
    elif [[ -r /proc/self/status ]]; then
        MEM_METHOD=proc
    else
        MEM_METHOD=skip
    fi
    ;;
time) [[ -x $GNU_TIME ]] && "$GNU_TIME" -v true >/dev/null 2>&1 || die "MEM_METHOD=time needs GNU time at $GNU_TIME" ;;
proc | skip) ;;
*) die "MEM_METHOD must be auto, time, proc or skip" ;;
esac

log "dispatch: $BIN ($("$BIN" --version 2>&1 | head -n 1 || true))"
log "temporary folders: under TMPDIR ($TMP_FS)"
log "runs: $RUNS, spawn: $TASKS tasks at concurrency $CONCURRENCY, idle: $IDLE_TASKS tasks for ${IDLE_SECONDS}s, memory: $MEM_METHOD"

# --- 1 + 2: spawn overhead and peak memory ------------------------------------

# Run a command under GNU time when that is how memory is measured, so both
# sides of the comparison pay the same (tiny) wrapper cost.
timed() {
    local out=$1
    shift
    if [[ $MEM_METHOD == time ]]; then
        "$GNU_TIME" -v -o "$out" "$@"
    else
        "$@"
    fi
}

DISPATCH_MS=()
BEFORE_MS=()
AFTER_MS=()
XARGS_MS=()
FLOOR_MS=()
STATE_FLOOR_MS=()
RSS_KB=()

for ((run = 1; run <= RUNS; run++)); do
    STEP="spawn benchmark, dispatch, run $run"
    new_tmp
    write_spawn_manifest "$dir/sweep.yaml"
    start=$(now_us)
    status=0
    (cd "$dir" && timed "$dir/time.txt" "$BIN" run --quiet --root "$dir" sweep.yaml \
        >"$dir/stdout.txt" 2>"$dir/stderr.txt") || status=$?
    end=$(now_us)
    if ((status != 0)); then
        log "--- dispatch stderr ---"
        tail -n 20 "$dir/stderr.txt" >&2 || true
        die "dispatch run exited with status $status (expected 0)"
    fi
    done_count=$(count_done "$dir")
    ((done_count == TASKS)) || die "only $done_count of $TASKS dispatch workers ran"
    DISPATCH_MS+=("$(calc 1 "($end - $start) / 1000")")
    events=("$dir"/.dispatch/runs/*/events.jsonl)
    phases=$(split_phases "${events[0]}" "$start" "$end")
    BEFORE_MS+=("${phases% *}")
    AFTER_MS+=("${phases#* }")
    if [[ $MEM_METHOD == time ]]; then
        rss=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$dir/time.txt")
        [[ -n $rss ]] || die "GNU time reported no maximum resident set size"
        RSS_KB+=("$rss")
    fi
    # The run's folder is kept until the benchmark ends: deleting its
    # thousands of files here would slow the next run's file creation on
    # ext4 (see benches/README.md), which no real project does between runs.

    STEP="spawn benchmark, xargs, run $run"
    new_tmp
    mkdir "$dir/ipc"
    start=$(now_us)
    status=0
    (export DISPATCH_IPC_DIR="$dir/ipc" &&
        seq 1 "$TASKS" | timed "$dir/time.txt" xargs -P "$CONCURRENCY" -n 1 sh -c "$WORKER" sh) ||
        status=$?
    end=$(now_us)
    ((status == 0)) || die "xargs exited with status $status"
    [[ -e $dir/ipc/.done ]] || die "the xargs workers did not run"
    XARGS_MS+=("$(calc 1 "($end - $start) / 1000")")

    if [[ -n $FLOOR_BIN ]]; then
        STEP="spawn benchmark, bare spawner, run $run"
        new_tmp
        mkdir "$dir/ipc"
        start=$(now_us)
        status=0
        (export DISPATCH_IPC_DIR="$dir/ipc" &&
            "$FLOOR_BIN" "$TASKS" "$CONCURRENCY" "$WORKER" >/dev/null) || status=$?
        end=$(now_us)
        ((status == 0)) || die "the bare spawner exited with status $status"
        [[ -e $dir/ipc/.done ]] || die "the bare spawner's workers did not run"
        FLOOR_MS+=("$(calc 1 "($end - $start) / 1000")")

        STEP="spawn benchmark, bare spawner keeping the issue's state, run $run"
        new_tmp
        start=$(now_us)
        status=0
        "$FLOOR_BIN" "$TASKS" "$CONCURRENCY" "$WORKER" "$dir/state" >/dev/null || status=$?
        end=$(now_us)
        ((status == 0)) || die "the bare spawner keeping state exited with status $status"
        [[ -e $dir/state/tasks/t0/ipc/.done ]] || die "the state-keeping spawner's workers did not run"
        STATE_FLOOR_MS+=("$(calc 1 "($end - $start) / 1000")")
    fi

    log "run $run/$RUNS: dispatch ${DISPATCH_MS[-1]} ms (${BEFORE_MS[-1]} before the first worker, ${AFTER_MS[-1]} after the last), xargs ${XARGS_MS[-1]} ms${FLOOR_MS:+, bare spawner ${FLOOR_MS[-1]} ms, keeping state ${STATE_FLOOR_MS[-1]} ms}${RSS_KB:+, dispatch max RSS ${RSS_KB[-1]} KiB}"
done

# Without GNU time: separate, untimed runs (the polling loop costs CPU that
# would distort the wall times), reading the kernel's high-water mark of the
# dispatch process until it exits. The last sample can miss a peak reached in
# the final poll interval.
if [[ $MEM_METHOD == proc ]]; then
    for ((run = 1; run <= RUNS; run++)); do
        STEP="peak memory (VmHWM polling), run $run"
        new_tmp
        write_spawn_manifest "$dir/sweep.yaml"
        (cd "$dir" && exec "$BIN" run --quiet --root "$dir" sweep.yaml >"$dir/stdout.txt" 2>"$dir/stderr.txt") &
        pid=$!
        BGPIDS+=("$pid")
        hwm=0
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n $v ]] && ((v > hwm)) && hwm=$v
            sleep 0.01
        done
        status=0
        wait "$pid" || status=$?
        forget_pid "$pid"
        ((status == 0)) || die "dispatch run exited with status $status (expected 0)"
        ((hwm > 0)) || die "could not read VmHWM of the dispatch process"
        RSS_KB+=("$hwm")
        log "memory run $run/$RUNS: VmHWM $hwm KiB"
        drop_tmp "$dir"
    done
fi

# --- 3: idle cost -----------------------------------------------------------

IDLE_SLEEP=$((IDLE_SECONDS + 30 > 60 ? IDLE_SECONDS + 30 : 60))
IDLE_CPU=()
for ((run = 1; run <= RUNS; run++)); do
    STEP="idle benchmark, run $run (starting $IDLE_TASKS workers)"
    new_tmp
    write_idle_manifest "$dir/sweep.yaml" "$IDLE_SLEEP"
    # exec: $! is dispatch itself, so /proc/$!/stat is its own CPU time.
    (cd "$dir" && exec "$BIN" run --quiet --root "$dir" sweep.yaml >"$dir/stdout.txt" 2>"$dir/stderr.txt") &
    pid=$!
    BGPIDS+=("$pid")
    waited=0
    until (($(children_of "$pid" | wc -l) >= IDLE_TASKS)); do
        kill -0 "$pid" 2>/dev/null || die "dispatch exited before all $IDLE_TASKS workers started"
        ((waited < 600)) || die "not all $IDLE_TASKS workers started within 60 s"
        pause 0.1
        waited=$((waited + 1))
    done
    pause 1 # let the start-up bookkeeping settle

    STEP="idle benchmark, run $run (measuring for ${IDLE_SECONDS}s)"
    t0=$(now_us)
    c0=$(cpu_ticks "$pid")
    pause "$IDLE_SECONDS"
    c1=$(cpu_ticks "$pid")
    t1=$(now_us)
    window=$(calc 3 "($t1 - $t0) / 1000000")
    cpu=$(calc 3 "($c1 - $c0) / $CLK_TCK")
    IDLE_CPU+=("$(calc 4 "$cpu * 60 / $window")")
    log "idle run $run/$RUNS: ${cpu} CPU-s in ${window}s (${IDLE_CPU[-1]} CPU-s/min)"

    STEP="idle benchmark, run $run (stopping with SIGINT)"
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    forget_pid "$pid"
    # 130 is dispatch's "interrupted"; anything else is worth a look.
    ((status == 130)) || log "note: the interrupted run exited with status $status (expected 130)"
    drop_tmp "$dir"
done

# --- report -----------------------------------------------------------------

STEP="writing the report"
d_ms=$(printf '%s\n' "${DISPATCH_MS[@]}" | median)
x_ms=$(printf '%s\n' "${XARGS_MS[@]}" | median)
idle=$(printf '%s\n' "${IDLE_CPU[@]}" | median)
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)

echo
echo "| Measurement | Median | Range ($RUNS runs) |"
echo "|---|---|---|"
echo "| dispatch run, $TASKS instant workers, concurrency $CONCURRENCY (wall) | $(calc 0 "$d_ms") ms | $(printf '%s\n' "${DISPATCH_MS[@]}" | minmax) ms |"
echo "| xargs -P $CONCURRENCY, same $TASKS processes (wall) | $(calc 0 "$x_ms") ms | $(printf '%s\n' "${XARGS_MS[@]}" | minmax) ms |"
echo "| … of which before the first worker starts (start-up, manifest, plans, task folders) | $(calc 0 "$(printf '%s\n' "${BEFORE_MS[@]}" | median)") ms | $(printf '%s\n' "${BEFORE_MS[@]}" | minmax) ms |"
echo "| … of which after the last worker ends (reports, exit) | $(calc 0 "$(printf '%s\n' "${AFTER_MS[@]}" | median)") ms | $(printf '%s\n' "${AFTER_MS[@]}" | minmax) ms |"
echo "| dispatch per process | $(calc 3 "$d_ms / $TASKS") ms | |"
echo "| xargs per process | $(calc 3 "$x_ms / $TASKS") ms | |"
echo "| ratio dispatch / xargs | $(calc 2 "$d_ms / $x_ms")× | |"
if ((${#FLOOR_MS[@]})); then
    f_ms=$(printf '%s\n' "${FLOOR_MS[@]}" | median)
    echo "| bare tokio spawner, same $TASKS processes (wall; process groups, pipes drained) | $(calc 0 "$f_ms") ms | $(printf '%s\n' "${FLOOR_MS[@]}" | minmax) ms |"
    echo "| ratio bare spawner / xargs | $(calc 2 "$f_ms / $x_ms")× | |"
    echo "| dispatch's own cost per task (dispatch − bare spawner) | $(calc 3 "($d_ms - $f_ms) / $TASKS") ms | |"
    s_ms=$(printf '%s\n' "${STATE_FLOOR_MS[@]}" | median)
    echo "| bare spawner keeping the state the issue asks for (task folders, plan.md, worker.log, task.json twice, events.jsonl) | $(calc 0 "$s_ms") ms | $(printf '%s\n' "${STATE_FLOOR_MS[@]}" | minmax) ms |"
    echo "| ratio bare spawner keeping state / xargs | $(calc 2 "$s_ms / $x_ms")× | |"
    echo "| ratio dispatch / bare spawner keeping state | $(calc 2 "$d_ms / $s_ms")× | |"
fi
if ((${#RSS_KB[@]})); then
    rss=$(printf '%s\n' "${RSS_KB[@]}" | median)
    how=$([[ $MEM_METHOD == time ]] && echo "GNU time -v" || echo "VmHWM polling")
    echo "| dispatch peak memory, $TASKS-task run (max RSS, $how) | $(calc 1 "$rss / 1024") MiB | $(printf '%s\n' "${RSS_KB[@]}" | minmax) KiB |"
else
    echo "| dispatch peak memory | skipped (MEM_METHOD=skip, or neither GNU time nor /proc) | |"
fi
echo "| dispatch idle CPU, $IDLE_TASKS sleeping workers, ${IDLE_SECONDS}s window | $(calc 3 "$idle") CPU-s/min ($(calc 2 "$idle / 60 * 100")% of one core) | $(printf '%s\n' "${IDLE_CPU[@]}" | minmax) CPU-s/min |"
echo
echo "Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); temporary folders on $TMP_FS; $("$BIN" --version); $(date -u '+%Y-%m-%d %H:%M UTC')."
