#!/bin/sh
# Demo worker: counts TODO and FIXME markers in a folder and reports where.
set -eu
. "$(dirname "$0")/lib.sh"
dir=${1:-src}

total=$(grep -rn -E 'TODO|FIXME' "$dir" 2>/dev/null | wc -l | tr -d ' ')
pause
check_next "$total marker(s) under $dir/"
fixme=$(grep -rn 'FIXME' "$dir" 2>/dev/null | head -n 1 | cut -d: -f1,2 || true)
if [ -n "$fixme" ]; then
    "$DISPATCH_BIN" worker finding --severity low "A FIXME is left in the code" --location "$fixme"
fi
{
    echo "# TODO and FIXME markers under $dir/"
    echo
    grep -rn -E 'TODO|FIXME' "$dir" 2>/dev/null | sed 's/^/- /' || true
    echo
    echo "Total: $total"
} > "$DISPATCH_OUTPUT"
pause
check_next "list written to output.md"
finish
