#!/usr/bin/env bash
# summarize: count test results (each TAP line, each exit-status test) over build dirs.
# Usage: tests/summarize.sh BUILDDIR... ; prints "N passed, N failed, N skipped".
set -u
pass=0 fail=0 skip=0
for dir in "$@"; do
	[ -d "$dir" ] || continue
	while read -r result; do
		case "$result" in
		PASS|XFAIL) pass=$((pass + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		*) fail=$((fail + 1)) ;;
		esac
	done < <(find "$dir" -name '*.trs' -exec sed -n 's/^:test-result: //p' {} + 2>/dev/null)
done
echo "$pass passed, $fail failed, $skip skipped"
