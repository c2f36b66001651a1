#!/usr/bin/env bash
# Runs the page-copy benchmark (bench/pagecopy.c) and prints its table; the raw run times go to
# build/bench/pagecopy.json. `make bench` builds it and calls this.
# Environment: BENCH_MEM_MIB (memory copied by each path, default 1024), BENCH_LIMIT_MIB (the
# memcpy / tmpfs-write buffer, default 1024), BENCH_RUNS (default 5), BENCH_WARMUP (default 1),
# BENCH_TIMEOUT (seconds, default 300). Extra arguments go to pagecopy (see its --help).
# With the defaults, a 2-vCPU VM with ~14 us page faults takes a little over a minute; most of
# it is the restore read into fresh memory, which faults every page.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/bench/pagecopy
json=build/bench/pagecopy.json
mem=${BENCH_MEM_MIB:-1024}
limit=${BENCH_LIMIT_MIB:-1024}
runs=${BENCH_RUNS:-5}
warmup=${BENCH_WARMUP:-1}
dir=/dev/shm

make -s --no-print-directory "$bin"

# At its peak, pagecopy holds two limit buffers, or (restore phase) the image on tmpfs plus two
# destinations of the same size; tmpfs is RAM here, and there is no swap.
need_mib=$(( (limit * 2 > mem * 3 ? limit * 2 : mem * 3) + 512 ))
avail_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
shm_mib=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
if [ "$avail_mib" -lt "$need_mib" ] || [ "$shm_mib" -lt $(( mem + 64 )) ]; then
	echo "bench: needs about $need_mib MiB of free memory and $(( mem + 64 )) MiB free on $dir;" \
		"has $avail_mib and $shm_mib. Lower BENCH_MEM_MIB / BENCH_LIMIT_MIB." >&2
	exit 1
fi

# SIGTERM on timeout lets pagecopy write pipe-max-size back and remove its files.
exec timeout -k 10 "${BENCH_TIMEOUT:-300}" "$bin" --mem "$mem" --limit-mem "$limit" \
	--runs "$runs" --warmup "$warmup" --json "$json" --dir "$dir" "$@"
