# Shared by the benchmark scripts: stopping a run and everything it
# started. Sourced, not run.

# Every descendant of a pid (children first found through /proc).
descendants() {
    local parent=$1 child
    for child in $(children_of "$parent"); do
        echo "$child"
        descendants "$child"
    done
}

children_of() {
    if command -v pgrep >/dev/null 2>&1; then
        pgrep -P "$1" || true
    else
        local stat rest state ppid pid
        for stat in /proc/[0-9]*/stat; do
            rest=$(cat "$stat" 2>/dev/null) || continue
            rest=${rest##*) } # the fields after the command name
            read -r state ppid _ <<<"$rest"
            if [[ $ppid == "$1" ]]; then
                pid=${stat#/proc/}
                echo "${pid%/stat}"
            fi
        done
    fi
}

# Stop a run that is still going: SIGINT (dispatch stops its workers), then
# SIGKILL to it and to whatever it left behind.
stop_tree() {
    local pid=$1 i kids
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(descendants "$pid" || true)
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $kids; do
        kill -KILL -- "-$i" 2>/dev/null || kill -KILL "$i" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
}
