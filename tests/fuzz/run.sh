#!/bin/sh
# run: runs one libFuzzer target for a while with its dictionary and corpus, then
# merges what it found into the corpus. Run from a build directory configured
# with CC=clang --enable-fuzzing.
#
# usage: tests/fuzz/run.sh TARGET SECONDS [LIBFUZZER-OPTION...]
#        (TARGET: response serial ble image json; e.g. -detect_leaks=0 while a
#        known leak elsewhere is being fixed)
set -eu

target=${1:?usage: run.sh TARGET SECONDS [LIBFUZZER-OPTION...]}
seconds=${2:?usage: run.sh TARGET SECONDS [LIBFUZZER-OPTION...]}
shift 2
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
bin=tests/fuzz/fuzz-$target-libfuzzer
corpus=$srcdir/tests/fuzz/corpus/$target
dict=$srcdir/tests/fuzz/fuzz-$target.dict
work=tests/fuzz/work-$target

[ -x "$bin" ] || { echo "$bin not built: configure with CC=clang --enable-fuzzing, then make $bin" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work/new" "$work/artifacts"

# New inputs go to the scratch directory (the first one named); the corpus is read only.
status=0
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-dict="$dict" -artifact_prefix="$work/artifacts/" "$@" "$work/new" "$corpus" \
	2>"$work/log" || status=$?
tail -n 12 "$work/log"

# Keep only what adds coverage.
"$bin" -merge=1 -dict="$dict" "$corpus" "$work/new" 2>"$work/merge.log"
grep -h 'MERGE-OUTER: [0-9]* new files' "$work/merge.log" || true

# A crash found once stays in the corpus forever, named by its content, so that
# make check replays it until it is fixed and ever after.
found=0
for f in "$work"/artifacts/crash-* "$work"/artifacts/leak-* "$work"/artifacts/timeout-* "$work"/artifacts/oom-*; do
	[ -f "$f" ] || continue
	sum=$(sha1sum "$f" | cut -d' ' -f1)
	cp "$f" "$corpus/$sum"
	echo "$target: $(basename "$f") kept as tests/fuzz/corpus/$target/$sum" >&2
	found=1
done
[ "$found" = 0 ] || exit 1
exit "$status"
