#!/usr/bin/env bash
# `make bench`: runs build/bench/crestbench, which dumps and restores bench/workload trees with
# build/crest (images on /dev/shm), measures the machine's limits in the same run, prints the
# tables and writes build/bench/bench.json. docs/performance.md says what each column means.
# Environment: see `build/bench/crestbench --help` (BENCH_RUNS, BENCH_BUDGET_S, BENCH_ONLY, ...);
# BENCH_TIMEOUT (seconds, default 540) bounds the whole run.
# BENCH_PAGECOPY=1 also runs the older copy-path study (bench/pagecopy.c, about 1-2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

make -s --no-print-directory build/crest build/bench/crestbench build/bench/workload

# The largest row holds a 4 GiB tree and its 4 GiB image at once; tmpfs is RAM, with no swap.
need_mib=$((8 * 1024 + 1024))
avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
if [ "$avail_mib" -lt "$need_mib" ]; then
	echo "bench: about $need_mib MiB of free memory are needed for the 4 GiB rows, $avail_mib are" \
		"free; those rows will say they were skipped" >&2
fi

# SIGTERM on timeout: crestbench kills its trees and crest, removes its images and still prints.
rc=0
timeout -k 20 "${BENCH_TIMEOUT:-540}" build/bench/crestbench "$@" || rc=$?

if [ "${BENCH_PAGECOPY:-0}" = 1 ]; then
	make -s --no-print-directory build/bench/pagecopy
	timeout -k 10 300 build/bench/pagecopy --json build/bench/pagecopy.json || rc=$?
fi
exit "$rc"
