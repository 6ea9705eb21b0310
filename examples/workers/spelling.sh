#!/bin/sh
# Demo worker: corrects "recieve" in a file and writes the corrected text to
# its output (the file itself is left alone, so the demo changes nothing).
set -eu
. "$(dirname "$0")/lib.sh"
file=${1:-examples/demo/notes.md}

count=$(grep -o -i 'recieve' "$file" | wc -l | tr -d ' ')
pause
check_next "found $count misspelling(s) of \"receive\" in $file"
sed 's/recieve/receive/g; s/Recieve/Receive/g' "$file" > "$DISPATCH_OUTPUT"
pause
check_next "corrected text written to output.md"
finish
