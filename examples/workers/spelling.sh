#!/bin/sh
# Demo worker: corrects "recieve" in a file and writes the corrected text to
# its output (the file itself is left alone, so the demo changes nothing).
set -eu
. "$(dirname "$0")/lib.sh"
file=${1:-examples/demo/notes.md}

count=$(grep -o -i 'recieve' "$file" | wc -l | tr -d ' ')
pause
check_next "found $count misspelling(s) of \"receive\" in $file"
# Ask, as an agent would when unsure; the manifest's answer rule replies.
answer=$("$DISPATCH_BIN" worker ask "Should I also correct the capitalised spelling \"Recieve\"?")
# One sed either way: `sed -i` takes its argument differently in GNU and
# BSD (macOS) sed.
case "$answer" in
    [Yy]*) sed -e 's/recieve/receive/g' -e 's/Recieve/Receive/g' "$file" > "$DISPATCH_OUTPUT" ;;
    *) sed 's/recieve/receive/g' "$file" > "$DISPATCH_OUTPUT" ;;
esac
pause
check_next "corrected text written to output.md"
finish
