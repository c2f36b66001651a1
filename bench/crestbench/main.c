/*
 * crestbench: what `make bench` runs (through scripts/bench.sh). See docs/performance.md.
 *
 * The rows, in the order they run (so that a spent time budget costs the last ones): machine
 * limits, the small process, the main trees, the scaling series, the compressed trees. Every
 * row's tree checks all of its memory after every restore.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>

struct settings opts = {
	.runs = 3,
	.small_runs = 10,
	.scale_runs = 3,
	.main_row_s = 25,
	.row_budget_s = 10,
	.budget_s = 360,
	.limit_bytes = 1024 * MiB,
	.crest = "build/crest",
	.workload = "build/bench/workload",
	.json = "build/bench/bench.json",
};
volatile sig_atomic_t stop_requested;

static struct row rows[MAX_ROWS];
static int nr_rows;

/* --- the plan --------------------------------------------------------------------------- */

/*
 * Rows of a group start only within this share of BENCH_BUDGET_S, so that on a busy machine,
 * where the main trees alone could spend it all, every table still gets its first rows.
 */
static double group_share(const char *group)
{
	if (!strcmp(group, "main"))
		return 0.6;
	if (!strcmp(group, "small") || !strcmp(group, "compress"))
		return 1;
	return 0.85;	/* the scaling series */
}

static struct row *add_row(const char *group, const char *name, long procs, size_t kib,
			   const char *data)
{
	struct row *r = &rows[nr_rows++];

	r->group = group;
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->wl = (struct wl_config){ .procs = procs, .kib = kib, .threads = 1, .data = data };
	r->max_runs = opts.runs;
	r->budget_s = opts.main_row_s;
	r->start_by_s = opts.budget_s * group_share(group);
	return r;
}

/* One tree with both data sets; targets in ms (0: none). */
static void add_main_pair(const char *name, long procs, size_t kib, long threads,
			  double target_dump_ms, double target_restore_ms)
{
	static const char *const data[] = { "random", "half" };

	for (int d = 0; d < 2; d++) {
		struct row *r = add_row("main", name, procs, kib, data[d]);

		r->wl.threads = threads;
		r->target_dump_ms = target_dump_ms;
		r->target_restore_ms = target_restore_ms;
	}
}

/* The targets of the issue (docs/performance.md). The least important tree comes last: when
 * the machine is busy, the time budget skips it first. */
static void plan_main(void)
{
	static const char *const data[] = { "random", "half" };

	add_main_pair("1 GiB, 1 process", 1, 1024 * KiB, 1, 250, 300);
	add_main_pair("4 GiB, 1 process", 1, 4096 * KiB, 1, 1000, 1200);
	add_main_pair("10 x 100 MiB processes", 10, 100 * KiB, 1, 0, 400);
	add_main_pair("1 GiB, 8 threads", 1, 1024 * KiB, 8, 0, 0);
	for (int d = 0; d < 2; d++) {
		struct row *r = add_row("compress", "1 GiB, 1 process", 1, 1024 * KiB, data[d]);

		r->compress = true;
		if (!opts.compress_opt[0])
			snprintf(r->skipped, sizeof(r->skipped),
				 "`crest dump --help` lists no --compress option in this build");
	}
}

static void plan_small(void)
{
	struct row *r = add_row("small", "10 MiB, 1 process", 1, 10 * KiB, "random");

	r->max_runs = opts.small_runs;
	r->target_dump_ms = 10;
	r->target_restore_ms = 15;
}

/* One series: n scaled in *field of a 64 KiB tree; fds and vmas beyond the machine's limits are
 * still listed, and skipped with the reason when their turn comes. */
static void plan_series(const char *group, const long *counts, int nr, size_t field)
{
	for (int i = 0; i < nr; i++) {
		char name[32];
		struct row *r;

		snprintf(name, sizeof(name), "%ld", counts[i]);
		r = add_row(group, name, 1, 64, "random");
		*(long *)((char *)&r->wl + field) = counts[i];
		r->count = counts[i];
		r->step = i;
		r->max_runs = opts.scale_runs;
		r->budget_s = opts.row_budget_s;
	}
}

static void plan_scaling(void)
{
	static const long procs[] = { 1, 10, 100, 1000 }, threads[] = { 1, 10, 100, 1000 };
	static const long fds[] = { 10, 1000, 5000, 10000, 100000 };
	static const long vmas[] = { 10, 1000, 10000, 30000, 60000 };

	plan_series("procs", procs, 4, offsetof(struct wl_config, procs));
	plan_series("threads", threads, 4, offsetof(struct wl_config, threads));
	plan_series("fds", fds, 5, offsetof(struct wl_config, fds));
	plan_series("vmas", vmas, 5, offsetof(struct wl_config, vmas));
}

static bool wanted(const char *group)
{
	const char *p = opts.only;
	size_t len = strlen(group);

	if (!p || !*p)
		return true;
	while ((p = strstr(p, group))) {
		bool starts = p == opts.only || p[-1] == ',';
		bool ends = p[len] == 0 || p[len] == ',';

		if (starts && ends)
			return true;
		p += len;
	}
	return false;
}

/* Drops the rows of groups that BENCH_ONLY leaves out. */
static void keep_wanted_rows(void)
{
	int kept = 0;

	for (int i = 0; i < nr_rows; i++)
		if (wanted(rows[i].group))
			rows[kept++] = rows[i];
	nr_rows = kept;
}

static void run_group(const char *group, int step)
{
	for (int i = 0; i < nr_rows && !stop_requested; i++)
		if (!strcmp(rows[i].group, group) && rows[i].step == step && !rows[i].skipped[0])
			row_run(&rows[i]);
}

/*
 * The scaling series run step by step (every series' smallest n, then the next ...), the
 * cheapest series first within a step, so the largest and slowest rows (1000 processes) come
 * last and a busy machine's time budget costs them rather than whole series.
 */
static void run_rows(void)
{
	static const char *const series[] = { "vmas", "fds", "threads", "procs" };

	run_group("small", 0);
	run_group("main", 0);
	for (int step = 0; step < MAX_STEPS; step++)
		for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++)
			run_group(series[s], step);
	run_group("compress", 0);
}

static bool any_check_failed(void)
{
	for (int i = 0; i < nr_rows; i++)
		if (rows[i].check_failed)
			return true;
	return false;
}

/* --- settings --------------------------------------------------------------------------- */

static long env_num(const char *name, long def, long min, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		note("%s=%s: expected a number from %ld to %ld", name, s, min, max);
		exit(2);
	}
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: crestbench [--crest PATH] [--workload PATH] [--json PATH] [--dir DIR]\n"
		"Dumps and restores bench/workload trees with crest (images in DIR, default /dev/shm)\n"
		"and prints tables; see docs/performance.md. Environment:\n"
		"  BENCH_RUNS        runs of each main row and limit (default 3)\n"
		"  BENCH_SMALL_RUNS  runs of the small-process row (default 10)\n"
		"  BENCH_SCALE_RUNS  most runs of a scaling row (default 3)\n"
		"  BENCH_MAIN_ROW_S  a main row stops repeating after this many seconds (default 25)\n"
		"  BENCH_ROW_S       a scaling row stops repeating after this many seconds (default 10)\n"
		"  BENCH_BUDGET_S    seconds for the whole run (default 360): main rows start only in\n"
		"                    its first 60%%, scaling rows in its first 85%%, so every table\n"
		"                    gets rows on a busy machine; rows not started are skipped\n"
		"  BENCH_LIMIT_MIB   buffer of each limit measurement (default 1024)\n"
		"  BENCH_ONLY        groups to run, comma-separated: limits,small,main,compress,\n"
		"                    procs,threads,fds,vmas (default all)\n"
		"  BENCH_COMPRESS    the dump option that compresses (default --compress if\n"
		"                    `crest dump --help` lists it)\n"
		"  BENCH_SABOTAGE=1  every workload damages one byte before its check (self-test:\n"
		"                    every row must then fail)\n"
		"Exit status: 0, or 1 when a restored tree failed its check (wrong memory or threads);\n"
		"crest refusing or failing a row is reported in the tables, not in the status.\n");
}

static void parse_args(int argc, char **argv, const char **dir)
{
	static const struct option longopts[] = {
		{ "crest", required_argument, NULL, 'c' }, { "workload", required_argument, NULL, 'w' },
		{ "json", required_argument, NULL, 'j' }, { "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opts.crest = optarg; break;
		case 'w': opts.workload = optarg; break;
		case 'j': opts.json = optarg; break;
		case 'd': *dir = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
}

static void read_env(void)
{
	const char *compress = getenv("BENCH_COMPRESS");

	opts.runs = env_num("BENCH_RUNS", opts.runs, 1, MAX_RUNS);
	opts.small_runs = env_num("BENCH_SMALL_RUNS", opts.small_runs, 1, MAX_RUNS);
	opts.scale_runs = env_num("BENCH_SCALE_RUNS", opts.scale_runs, 1, MAX_RUNS);
	opts.main_row_s = env_num("BENCH_MAIN_ROW_S", opts.main_row_s, 0, 86400);
	opts.row_budget_s = env_num("BENCH_ROW_S", opts.row_budget_s, 0, 86400);
	opts.budget_s = env_num("BENCH_BUDGET_S", opts.budget_s, 1, 86400);
	opts.limit_bytes = env_num("BENCH_LIMIT_MIB", opts.limit_bytes / MiB, 16, 65536) * MiB;
	opts.only = getenv("BENCH_ONLY");
	opts.sabotage = env_num("BENCH_SABOTAGE", 0, 0, 1);
	if (compress)
		snprintf(opts.compress_opt, sizeof(opts.compress_opt), "%s", compress);
	else
		crest_probe_compress();
}

/* --- main ------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
	stop_requested = 1;
	wl_kill_current();
	crest_kill_current();
}

static void setup_process(const char *dir)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: waits end */

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Restored trees (crest restore -d) and orphans of dumped ones come back to us: we reap
	 * them, so their pids are free for the next restore. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		note("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	snprintf(opts.workdir, sizeof(opts.workdir), "%s/crestbench-%d", dir, getpid());
	if (mkdir(opts.workdir, 0700)) {
		note("cannot create %s: %s", opts.workdir, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *dir = "/dev/shm";

	parse_args(argc, argv, &dir);
	if (geteuid() != 0)
		note("not root: crest needs CAP_CHECKPOINT_RESTORE, CAP_SYS_PTRACE and more");
	opts.start_s = now_s();
	read_env();
	setup_process(dir);
	machine_info();
	if (wanted("limits") && measure_limits())
		note("the machine limits could not be measured; ratios are left out");
	plan_small();
	plan_main();
	plan_scaling();
	keep_wanted_rows();
	run_rows();
	machine_contention();
	remove_tree(opts.workdir);
	report_print(rows, nr_rows);
	report_json(rows, nr_rows);
	fprintf(stderr, "crestbench: %.0f s; figures in %s\n", now_s() - opts.start_s, opts.json);
	if (stop_requested)
		return 130;
	return any_check_failed() ? 1 : 0;
}
