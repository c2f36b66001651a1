/*
 * One row of a table: one workload tree, dumped and restored up to max_runs times.
 *
 * A run: crest dump (which kills the tree, as a plain dump does) -> wait until every pid is
 * free -> crest restore -d -> ping every process -> every process checks all its pages (and the
 * root its threads) -> remove the image. The next run dumps the tree restored by this one, so
 * the tree is filled once per row; the first dump is of the original tree, the others of
 * restored ones (their memory is the same pages at the same addresses).
 *
 * Restore time is taken from just before crest restore is forked until every process of the
 * tree has answered a ping (SIGUSR1, answered from user code with a line on the FIFO), so it
 * includes crest's exit and one ping round trip; that round trip is measured on the live tree
 * before the first dump (ping_ms) and printed beside it.
 */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PING_ROUNDS 3

static void __attribute__((format(printf, 2, 3))) fail(struct row *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->failed, sizeof(r->failed), fmt, ap);
	va_end(ap);
	note("%s %s: %s", r->group, r->name, r->failed);
}

uint64_t row_data_bytes(const struct row *r)
{
	return ((uint64_t)r->wl.kib * KiB * r->wl.procs) + (uint64_t)r->wl.vmas * 4096;
}

/* A bound for each wait of the row: generous, since other jobs share the machine. */
static double row_timeout_s(const struct row *r)
{
	return 60 + row_data_bytes(r) / (50.0 * MiB) + r->wl.procs * 0.1 + r->wl.threads * 0.05 +
	       (r->wl.fds + r->wl.vmas) * 0.002;
}

/* Says why the row cannot run on this machine now, or returns 0. */
static int check_room(struct row *r)
{
	long data_mib = row_data_bytes(r) / MiB + 1;
	long mem = mem_available_mib(), shm = fs_free_mib(opts.workdir);

	if (mach.nofile_hard >= 0 && r->wl.fds + 64 > mach.nofile_hard)
		snprintf(r->skipped, sizeof(r->skipped),
			 "needs RLIMIT_NOFILE >= %ld, hard limit is %ld (raising it needs CAP_SYS_RESOURCE)",
			 r->wl.fds + 64, mach.nofile_hard);
	else if (r->wl.vmas + 2 * r->wl.threads + 200 > mach.max_map_count)
		snprintf(r->skipped, sizeof(r->skipped), "needs vm.max_map_count >= %ld, it is %ld",
			 r->wl.vmas + 2 * r->wl.threads + 200, mach.max_map_count);
	else if (mem >= 0 && mem < 2 * data_mib + 1024)
		snprintf(r->skipped, sizeof(r->skipped),
			 "needs %ld MiB of free memory (tree + image), MemAvailable is %ld MiB",
			 2 * data_mib + 1024, mem);
	else if (shm >= 0 && shm < data_mib + 256)
		snprintf(r->skipped, sizeof(r->skipped), "needs %ld MiB free on %.160s, has %ld",
			 data_mib + 256, opts.workdir, shm);
	else
		return 0;
	note("%s %s: skipped: %s", r->group, r->name, r->skipped);
	return -1;
}

static int dump(struct row *r, struct workload *wl, const char *img, struct sample *s)
{
	char pid[24];
	char *argv[] = { "crest", "dump", "-t", pid, "-D", (char *)img, "--display-stats",
			 r->compress ? opts.compress_opt : NULL, NULL };

	snprintf(pid, sizeof(pid), "%d", wl->pids[0]);
	if (crest_run(argv, row_timeout_s(r), &s->dump) || s->dump.status) {
		fail(r, "crest dump exited %d: %s", s->dump.status, s->dump.last_line);
		return -1;
	}
	s->image_bytes = tree_bytes(img);
	if (wait_pids_gone(wl->pids, wl->nr_pids, 30)) {
		fail(r, "the dumped tree did not go away within 30 s");
		return -1;
	}
	return 0;
}

static int restore(struct row *r, struct workload *wl, const char *img, struct sample *s)
{
	char *argv[] = { "crest", "restore", "-d", "-D", (char *)img, "--display-stats", NULL };
	double t0 = now_s();

	if (crest_run(argv, row_timeout_s(r), &s->restore) || s->restore.status) {
		fail(r, "crest restore exited %d: %s", s->restore.status, s->restore.last_line);
		return -1;
	}
	if (wl_ask(wl, SIGUSR1, 'P', row_timeout_s(r), NULL)) {
		fail(r, "restored tree does not answer: %s", wl->error);
		return -1;
	}
	s->restore_ms = (now_s() - t0) * 1e3;
	return 0;
}

static int one_run(struct row *r, struct workload *wl, struct sample *s)
{
	char img[320];

	snprintf(img, sizeof(img), "%s/img", opts.workdir);
	remove_tree(img);
	if (dump(r, wl, img, s) || restore(r, wl, img, s))
		return -1;
	remove_tree(img);	/* before the check: tmpfs is RAM, and there is no swap */
	if (wl_ask(wl, SIGUSR2, 'V', row_timeout_s(r), NULL)) {
		fail(r, "check after restore %d: %s", r->n + 1, wl->error);
		r->check_failed = true;
		return -1;
	}
	r->verified++;
	return 0;
}

static void live_ping(struct row *r, struct workload *wl)
{
	double ms[PING_ROUNDS];
	int n = 0;

	while (n < PING_ROUNDS && !wl_ask(wl, SIGUSR1, 'P', 10, &ms[n]))
		n++;
	r->ping_ms = median(ms, n);
}

static bool out_of_time(const struct row *r, double row_start)
{
	if (stop_requested || now_s() - opts.start_s > opts.budget_s)
		return true;
	return r->budget_s > 0 && now_s() - row_start > r->budget_s;
}

void row_run(struct row *r)
{
	struct workload wl;
	double t0 = now_s();
	char img[320];

	if (now_s() - opts.start_s > r->start_by_s) {
		snprintf(r->skipped, sizeof(r->skipped),
			 "time budget: %s rows start only in the first %.0f s (BENCH_BUDGET_S=%.0f)",
			 r->group, r->start_by_s, opts.budget_s);
		return;
	}
	if (check_room(r))
		return;
	fprintf(stderr, "crestbench: %-8s %-28s ", r->group, r->name);
	r->wl.sabotage = opts.sabotage;
	if (wl_start(&wl, &r->wl, row_timeout_s(r))) {
		fail(r, "workload did not start: %s", wl.error);
		goto out;
	}
	r->setup_s = now_s() - t0;
	live_ping(r, &wl);
	while (r->n < r->max_runs && !one_run(r, &wl, &r->s[r->n])) {
		r->n++;
		if (out_of_time(r, t0))
			break;
	}
out:
	wl_stop(&wl);
	snprintf(img, sizeof(img), "%s/img", opts.workdir);
	remove_tree(img);
	fprintf(stderr, "%d run(s), %.1f s\n", r->n, now_s() - t0);
}

/* --- figures of a row ------------------------------------------------------------------- */

double get_dump_ms(const struct sample *s) { return s->dump.wall_ms; }
double get_frozen_ms(const struct sample *s) { return s->dump.frozen_ms; }
double get_restore_ms(const struct sample *s) { return s->restore_ms; }
double get_dump_crest_ms(const struct sample *s) { return s->dump.total_ms; }
double get_restore_crest_ms(const struct sample *s) { return s->restore.total_ms; }
double get_image_mib(const struct sample *s) { return s->image_bytes / (double)MiB; }

static int collect_values(const struct row *r, double (*get)(const struct sample *), double *v)
{
	for (int i = 0; i < r->n; i++)
		v[i] = get(&r->s[i]);
	return r->n;
}

double row_median(const struct row *r, double (*get)(const struct sample *))
{
	double v[MAX_RUNS];

	return median(v, collect_values(r, get, v));
}

double row_min(const struct row *r, double (*get)(const struct sample *))
{
	double v[MAX_RUNS];

	return min_of(v, collect_values(r, get, v));
}

double row_max(const struct row *r, double (*get)(const struct sample *))
{
	double v[MAX_RUNS];

	return max_of(v, collect_values(r, get, v));
}

static double stage_of(const struct crest_result *res, const char *name)
{
	for (int i = 0; i < res->nr_stages; i++)
		if (!strcmp(res->stages[i].name, name))
			return res->stages[i].ms;
	return -1;
}

double row_stage_median(const struct row *r, bool restore, const char *name)
{
	double v[MAX_RUNS];
	int n = 0;

	for (int i = 0; i < r->n; i++) {
		double ms = stage_of(restore ? &r->s[i].restore : &r->s[i].dump, name);

		if (ms >= 0)
			v[n++] = ms;
	}
	return n ? median(v, n) : -1;
}
