/*
 * The tables on stdout and the same figures as JSON. Every time is in ms (median [min-max]
 * over the runs of the row); bandwidths in GB/s (10^9 bytes a second) of the tree's data.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const scale_groups[] = { "procs", "threads", "fds", "vmas" };
static const char *const scale_titles[] = {
	"processes (a flat tree, 64 KiB of data each)",
	"threads (one process, 64 KiB of data)",
	"descriptors (one process, each its own open of a file)",
	"VMAs (one process, one-page private anonymous areas with data, holes between)",
};

static void print_header(void)
{
	printf("\ncrestbench %s, kernel %s, %ld CPUs (%s), %ld MiB RAM, THP %s\n", mach.date,
	       mach.kernel, mach.nproc, mach.cpu, mach.mem_mib, mach.thp);
	printf("images on %s; times in ms: median [min-max] of the runs; GB/s = 10^9 bytes/s of the tree's data\n",
	       opts.workdir);
	printf("other processes kept %.0f%% of the CPUs busy during the run; loadavg %s at start, %s at end\n",
	       mach.others_busy * 100, mach.load_start, mach.load_end);
}

static void print_stat_row(const char *name, const struct stat3 *st)
{
	printf("  %-46s %7.2f %7.2f %7.2f\n", name, st->med, st->min, st->max);
}

static void print_limits(void)
{
	if (!lim.measured) {
		printf("\nMachine limits: not measured\n");
		return;
	}
	printf("\nMachine limits (%zu MiB, %d runs, GB/s)       median     min     max\n",
	       opts.limit_bytes / MiB, opts.runs);
	print_stat_row("memcpy, populated -> populated", &lim.memcpy_gbps);
	print_stat_row("populate: mmap + MADV_POPULATE_WRITE", &lim.populate_gbps);
	print_stat_row("tmpfs write(), 4 MiB writes", &lim.write_gbps);
	print_stat_row("tmpfs read() into populated memory, 4 MiB", &lim.read_gbps);
	printf("  %-46s %7.2f   (populate, then read: what a restore must at least do)\n",
	       "restore bound", restore_bound_gbps());
}

/* "med [min-max]" of a figure over the runs of r. */
static const char *cell(const struct row *r, double (*get)(const struct sample *), char *buf,
			size_t len)
{
	if (!r->n)
		snprintf(buf, len, "-");
	else if (r->n == 1)
		snprintf(buf, len, "%.1f", row_median(r, get));
	else
		snprintf(buf, len, "%.1f [%.1f-%.1f]", row_median(r, get), row_min(r, get),
			 row_max(r, get));
	return buf;
}

static double gbps(const struct row *r, double ms)
{
	return ms > 0 ? row_data_bytes(r) / (ms / 1e3) / 1e9 : 0;
}

/* "NN%" of a limit, or "-" when the limits were not measured. */
static const char *share(double value, double limit, char *buf, size_t len)
{
	if (!lim.measured || limit <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.0f%%", value / limit * 100);
	return buf;
}

static const char *verdict(double ms, double target, char *buf, size_t len)
{
	if (target <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "<=%.0f %s", target, ms <= target ? "met" : "MISSED");
	return buf;
}

/* The stages crest printed, as medians, in crest's order (taken from the first run). */
static void print_stages(const struct row *r, bool restore)
{
	const struct crest_result *first = restore ? &r->s[0].restore : &r->s[0].dump;

	printf("      %-8s", restore ? "restore" : "dump");
	for (int i = 0; i < first->nr_stages; i++)
		printf(" %s %.1f", first->stages[i].name,
		       row_stage_median(r, restore, first->stages[i].name));
	if (!restore)
		printf(" | frozen %.1f", row_median(r, get_frozen_ms));
	printf(" | crest total %.1f", row_median(r, restore ? get_restore_crest_ms :
							 get_dump_crest_ms));
	if (restore)
		printf(" | ping round trip %.2f", r->ping_ms);
	printf("\n");
}

static bool row_unusable(const struct row *r, int width)
{
	if (r->skipped[0]) {
		printf("  %-*s skipped: %s\n", width, r->name, r->skipped);
		return true;
	}
	if (!r->n) {
		printf("  %-*s FAILED: %s\n", width, r->name, r->failed);
		return true;
	}
	return false;
}

static void print_main_row(const struct row *r)
{
	char d[48], f[48], rs[48], td[24], tr[24], pw[8], pr[8];
	double dump_ms = row_median(r, get_dump_ms), rst_ms = row_median(r, get_restore_ms);

	if (row_unusable(r, 22))
		return;
	printf("  %-22s %-6s %5d %-22s %-22s %-22s %7.1f %5.2f %5s %5.2f %5s %-12s %-12s %s\n",
	       r->name, r->wl.data, r->n, cell(r, get_dump_ms, d, sizeof(d)),
	       cell(r, get_frozen_ms, f, sizeof(f)), cell(r, get_restore_ms, rs, sizeof(rs)),
	       row_median(r, get_image_mib), gbps(r, dump_ms),
	       share(gbps(r, dump_ms), lim.write_gbps.med, pw, sizeof(pw)), gbps(r, rst_ms),
	       share(gbps(r, rst_ms), restore_bound_gbps(), pr, sizeof(pr)),
	       verdict(dump_ms, r->target_dump_ms, td, sizeof(td)),
	       verdict(rst_ms, r->target_restore_ms, tr, sizeof(tr)),
	       r->failed[0] ? "FAILED (see below)" : "ok");
	print_stages(r, false);
	print_stages(r, true);
	if (r->failed[0])
		printf("      FAILED: %s\n", r->failed);
}

static void print_main(struct row *rows, int nr, const char *group, const char *title)
{
	bool any = false;

	for (int i = 0; i < nr; i++)
		any |= !strcmp(rows[i].group, group);
	if (!any)
		return;
	printf("\n%s\n", title);
	printf("  %-22s %-6s %5s %-22s %-22s %-22s %7s %5s %5s %5s %5s %-12s %-12s %s\n", "tree",
	       "data", "runs", "dump ms", "frozen ms", "restore ms", "img MiB", "dGB/s", "/wr",
	       "rGB/s", "/bnd", "dump target", "rst target", "check");
	for (int i = 0; i < nr; i++)
		if (!strcmp(rows[i].group, group))
			print_main_row(&rows[i]);
}

/* Compressed rows against the plain row of the same tree (main.c pairs them by name). */
static const struct row *plain_of(const struct row *r, struct row *rows, int nr)
{
	for (int i = 0; i < nr; i++)
		if (!strcmp(rows[i].group, "main") && !strcmp(rows[i].name, r->name) &&
		    !strcmp(rows[i].wl.data, r->wl.data) && rows[i].n)
			return &rows[i];
	return NULL;
}

static void print_compress_row(const struct row *r, const struct row *p)
{
	double im0 = row_median(p, get_image_mib), im1 = row_median(r, get_image_mib);
	double d0 = row_median(p, get_dump_ms), d1 = row_median(r, get_dump_ms);
	double r0 = row_median(p, get_restore_ms), r1 = row_median(r, get_restore_ms);

	printf("  %-22s %-6s %5d %7.1f -> %7.1f (%4.2fx)  %8.1f -> %8.1f (x%5.2f)  %8.1f -> %8.1f (x%5.2f)  %s\n",
	       r->name, r->wl.data, r->n, im0, im1, im0 / im1, d0, d1, d1 / d0, r0, r1, r1 / r0,
	       r->failed[0] ? "FAILED (see below)" : "ok");
	print_stages(r, false);
	print_stages(r, true);
	if (r->failed[0])
		printf("      FAILED: %s\n", r->failed);
}

static void print_compress(struct row *rows, int nr)
{
	bool any = false;

	for (int i = 0; i < nr; i++)
		any |= !strcmp(rows[i].group, "compress");
	if (!any)
		return;
	printf("\nCompression (crest dump %s), against the same tree without it\n",
	       opts.compress_opt[0] ? opts.compress_opt : "--compress");
	printf("  %-22s %-6s %5s %-26s %-28s %-28s %s\n", "tree", "data", "runs",
	       "image MiB plain -> comp", "dump ms plain -> comp", "restore ms plain -> comp",
	       "check");
	for (int i = 0; i < nr; i++) {
		const struct row *r = &rows[i], *p;

		if (strcmp(r->group, "compress") || row_unusable(r, 22))
			continue;
		p = plain_of(r, rows, nr);
		if (p)
			print_compress_row(r, p);
		else
			printf("  %-22s %-6s no plain row to compare with\n", r->name, r->wl.data);
	}
}

static void print_scale_row(const struct row *r, const struct row *prev)
{
	double d = row_median(r, get_dump_ms), rs = row_median(r, get_restore_ms);
	char dstep[40] = "", rstep[40] = "";

	if (prev && prev->n && r->count > prev->count) {
		double dn = r->count - prev->count;
		double ds = (d - row_median(prev, get_dump_ms)) / dn;
		double rst = (rs - row_median(prev, get_restore_ms)) / dn;

		snprintf(dstep, sizeof(dstep), "%.4f", ds);
		snprintf(rstep, sizeof(rstep), "%.4f", rst);
	}
	printf("  %7ld %4d %10.1f %10.4f %10s %10.1f %10.4f %10s %9.1f %9.1f\n", r->count, r->n, d,
	       d / r->count, dstep, rs, rs / r->count, rstep, row_median(r, get_frozen_ms),
	       row_median(r, get_image_mib));
}

static void print_scale(struct row *rows, int nr)
{
	for (size_t g = 0; g < sizeof(scale_groups) / sizeof(scale_groups[0]); g++) {
		const struct row *prev = NULL;
		bool header = false;

		for (int i = 0; i < nr; i++) {
			const struct row *r = &rows[i];

			if (strcmp(r->group, scale_groups[g]))
				continue;
			if (!header) {
				printf("\nScaling: %s; medians in ms\n", scale_titles[g]);
				printf("  %7s %4s %10s %10s %10s %10s %10s %10s %9s %9s\n", "n", "runs",
				       "dump", "dump/n", "step/item", "restore", "restore/n",
				       "step/item", "frozen", "img MiB");
				header = true;
			}
			if (row_unusable(r, 7))
				continue;
			print_scale_row(r, prev);
			print_stages(r, false);
			print_stages(r, true);
			if (r->failed[0])
				printf("          FAILED: %s\n", r->failed);
			prev = r;
		}
	}
}

void report_print(struct row *rows, int nr)
{
	print_header();
	print_limits();
	print_main(rows, nr, "main",
		   "Main: dump = crest dump, fork to exit; frozen = crest's own figure; restore = crest restore -d\n"
		   "start until every process answered a ping; dGB/s, rGB/s = data / time; /wr = share of the\n"
		   "tmpfs write limit, /bnd = share of the restore bound; stage lines are crest's --display-stats");
	print_compress(rows, nr);
	print_main(rows, nr, "small", "Small-process latency (10 MiB, one thread)");
	print_scale(rows, nr);
	printf("\nstep/item = (time - time of the row above) / (n - n above): a step that grows with n is super-linear.\n");
	fflush(stdout);
}
