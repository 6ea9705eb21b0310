#!/bin/sh
# Demo worker: checks that the relative links of a Markdown file point at
# files that exist.
set -eu
. "$(dirname "$0")/lib.sh"
file=${1:-README.md}
base=$(dirname "$file")

links=$(grep -o -E '\]\([^)#]+\)' "$file" | sed -E 's/^\]\((.*)\)$/\1/' | grep -v -E '^[a-z]+:' || true)
checked=0
broken=""
for link in $links; do
    checked=$((checked + 1))
    if [ ! -e "$base/$link" ]; then
        broken="$broken $link"
        "$DISPATCH_BIN" worker finding --severity medium "Broken link to $link" --location "$file"
    fi
done
pause
check_next "$checked relative link(s) found in $file"
{
    echo "# Relative links in $file"
    echo
    echo "Checked: $checked"
    if [ -n "$broken" ]; then echo "Broken:$broken"; else echo "Broken: none"; fi
} > "$DISPATCH_OUTPUT"
pause
if [ -n "$broken" ]; then verdict="broken:$broken"; else verdict="all of them resolve"; fi
check_next "$verdict"
finish
