#!/usr/bin/env bash
# make demo: a counter is checkpointed, killed, restored, and counts on without a gap.
set -euo pipefail
cd "$(dirname "$0")/.."
crest=build/crest
work=demo-work
images=demo-images
rm -rf "$work" "$images"
mkdir -p "$work"
out=$work/counter.txt

cleanup() { [ -n "${restored:-}" ] && kill -9 "$restored" 2>/dev/null || true; }
trap cleanup EXIT

build/demo-counter "$out" </dev/null >/dev/null 2>&1 &
pid=$!
sleep 1
echo "demo: counter pid $pid has counted to $(tail -n1 "$out")"

$crest dump -t "$pid" -D "$images" --display-stats
wait "$pid" 2>/dev/null || true
last=$(tail -n1 "$out")
echo "demo: dumped to ./$images and killed at $last; images:"
ls -l "$images" | sed 's/^/  /'
sleep 0.5
[ "$(tail -n1 "$out")" = "$last" ] || { echo "demo: the counter still runs after the dump" >&2; exit 1; }

$crest restore -D "$images" -d --pidfile "$work/pid"
restored=$(cat "$work/pid")
echo "demo: restored as pid $restored"
sleep 1
now=$(tail -n1 "$out")
echo "demo: the restored counter has gone on from $last to $now"

# The file must hold 1, 2, 3, ... with nothing missing and nothing repeated.
if awk 'NR != $1 { bad = 1 } END { exit bad }' "$out" && [ "$now" -gt "$last" ]; then
	echo "demo: OK: every number from 1 to $now is there once: no gap, no restart"
else
	echo "demo: FAILED: the sequence in $out has a gap or a restart" >&2
	exit 1
fi
