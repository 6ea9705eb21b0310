# Shared helpers for the demo workers: the same protocol an agent follows,
# in a few lines of POSIX shell. dispatch sets DISPATCH_PLAN, DISPATCH_OUTPUT
# and DISPATCH_IPC_DIR for every worker.

# Mark the next unchecked item `[x]` with a note, atomically (temp + rename),
# as the worker prompt asks agents to.
check_next() {
    tmp="$DISPATCH_PLAN.tmp.$$"
    awk -v note="$1" '
        !done && /^[[:space:]]*[-*] \[ \]/ { sub(/\[ \]/, "[x]"); $0 = $0 " — " note; done = 1 }
        { print }
    ' "$DISPATCH_PLAN" > "$tmp" && mv "$tmp" "$DISPATCH_PLAN"
}

# Tell dispatch the whole plan is finished.
finish() {
    mkdir -p "$DISPATCH_IPC_DIR" && : > "$DISPATCH_IPC_DIR/.done"
}

# A short pause, so the live view has something to show.
pause() {
    sleep "${DEMO_PAUSE:-1}"
}
