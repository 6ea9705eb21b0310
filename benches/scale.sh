#!/usr/bin/env bash
# The cost curve of a wide sweep: for 1,000, 5,000 and 50,000 instant tasks,
# how long `validate` and `plan` take, the peak memory of the run, the time
# before its first worker starts, `dispatch status` and `dispatch report`
# (every format: md, json, junit, html) on the finished run, and the state
# folder's size per task.
# A benchmark, not a test: it fails only when a step fails, never because
# a number is large. See benches/README.md.
#
#   benches/scale.sh                                   # target/release/dispatch
#   BASE=/tmp/dispatch-before benches/scale.sh         # and an earlier build, side by side
#   SIZES="1000 5000" RUNS=1 benches/scale.sh          # quicker
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

DISPATCH=${DISPATCH:-$here/../target/release/dispatch}
BASE=${BASE:-}
SIZES=${SIZES:-1000 5000 50000}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-8}
TMP=${TMPDIR:-/tmp}

die() {
    echo "error: $*" >&2
    exit 1
}
log() { echo "$*" >&2; }

DISPATCH=$(realpath "$DISPATCH" 2>/dev/null || echo "$DISPATCH")
[[ -z $BASE ]] || BASE=$(realpath "$BASE")
[[ -x $DISPATCH ]] || die "no $DISPATCH: run cargo build --release first"
[[ -z $BASE || -x $BASE ]] || die "BASE=$BASE is not a program"
/usr/bin/time -f %M true 2>/dev/null || die "GNU time (/usr/bin/time) is needed for the peak memory"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# Milliseconds since the epoch of an events.jsonl timestamp.
event_ms() { date -d "$1" +%s%3N; }

# The sweep: 250-value matrices, so a build that allows at most 256
# entries per task and no `max_tasks` reads it too (up to its own limit).
write_sweep() {
    local dir=$1 tasks=$2 with_limit=$3 per=250 t i
    mkdir -p "$dir/.git"
    {
        printf 'version: 1\nname: scale\nconcurrency: %s\n' "$CONCURRENCY"
        [[ $with_limit == yes ]] && printf 'max_tasks: %s\n' "$tasks"
        printf 'tasks:\n'
        for ((t = 0; t * per < tasks; t++)); do
            printf '  t%03d:\n    command: [sh, -c, %s]\n    plan: [Do nothing]\n    matrix:\n      v: [' \
                "$t" "'"': > "$DISPATCH_IPC_DIR/.done"'"'"
            for ((i = t * per; i < (t + 1) * per && i < tasks; i++)); do
                ((i > t * per)) && printf ','
                printf 'x%d' "$i"
            done
            printf ']\n'
        done
    } >"$dir/sweep.yaml"
}

# Median wall milliseconds of RUNS runs of a command (its output dropped).
timed() {
    local r start out=()
    for ((r = 0; r < RUNS; r++)); do
        start=$(now_ms)
        "$@" >/dev/null 2>&1 || return 1
        out+=($(($(now_ms) - start)))
    done
    printf '%s\n' "${out[@]}" | median
}

# One build at one size: prints `label|validate+plan|rss MiB|first ms|status ms|md|json|junit|html|KiB per task|wall s`.
measure() {
    local bin=$1 label=$2 tasks=$3 dir limit validate plan start end rss first events ts status md json junit html kib wall
    dir=$(mktemp -d "$TMP/dispatch-scale-XXXXXX")
    limit=no
    ((tasks > 5000)) && limit=yes
    write_sweep "$dir" "$tasks" "$limit"
    cd "$dir"
    if ! "$bin" validate sweep.yaml >/dev/null 2>"$dir/validate.err"; then
        log "$label, $tasks tasks: refused ($(head -1 "$dir/validate.err"))"
        echo "$label|$tasks|refused: $(head -1 "$dir/validate.err" | sed 's/.*: //' | cut -c1-60)|||||||||"
        cd - >/dev/null
        rm -rf "$dir"
        return
    fi
    validate=$(timed "$bin" validate sweep.yaml)
    plan=$(timed "$bin" plan sweep.yaml --json)
    start=$(now_ms)
    /usr/bin/time -f %M -o "$dir/rss" "$bin" run sweep.yaml --quiet >/dev/null 2>"$dir/run.err" ||
        die "$label: the run of $tasks tasks failed: $(tail -3 "$dir/run.err")"
    end=$(now_ms)
    wall=$(awk "BEGIN {printf \"%.1f\", ($end - $start) / 1000}")
    rss=$(awk '{printf "%.0f", $1 / 1024}' "$dir/rss")
    events=(.dispatch/runs/*/events.jsonl)
    ts=$(grep -m 1 '"event":"task-started"' "${events[0]}" | sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
    first=$(($(event_ms "$ts") - start))
    status=$(timed "$bin" status)
    md=$(timed "$bin" report --format md)
    json=$(timed "$bin" report --format json)
    junit=$(timed "$bin" report --format junit)
    html=$(timed "$bin" report --format html)
    kib=$(du -sk .dispatch | awk -v n="$tasks" '{printf "%.1f", $1 / n}')
    log "$label, $tasks tasks: validate $validate + plan $plan ms, peak $rss MiB, first worker $first ms, status $status ms, report $md/$json/$junit/$html ms, $kib KiB per task, run $wall s"
    echo "$label|$tasks|$((${validate%.*} + ${plan%.*}))|$rss|$first|$status|$md|$json|$junit|$html|$kib|$wall"
    cd - >/dev/null
    rm -rf "$dir"
}

rows=()
for tasks in $SIZES; do
    [[ -n $BASE ]] && rows+=("$(measure "$BASE" base "$tasks")")
    rows+=("$(measure "$DISPATCH" new "$tasks")")
done

echo "| Build | Tasks | validate + plan (ms) | peak RSS (MiB) | before the first worker (ms) | status (ms) | report md / json / junit / html (ms) | state per task (KiB) | whole run (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
    IFS='|' read -r label tasks vp rss first status md json junit html kib wall <<<"$row"
    if [[ $vp == refused* ]]; then
        echo "| $label | $tasks | $vp | | | | | | |"
    else
        echo "| $label | $tasks | $vp | $rss | $first | $status | $md / $json / $junit / $html | $kib | $wall |"
    fi
done
echo
echo "Machine: $(nproc) CPUs, $(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: //'), Linux $(uname -r | cut -d- -f1), state in $TMP ($(df -T "$TMP" | awk 'NR == 2 {print $2}')), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC'); medians of $RUNS runs for validate, plan, status and report."
