/* The figures of the run as JSON (opts.json): the machine, the limits, every row with every run. */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../json-str.h"

static void json_kv_str(FILE *f, const char *key, const char *val, const char *sep)
{
	fprintf(f, "\"%s\": ", key);
	json_str(f, val);
	fputs(sep, f);
}

static void json_stat(FILE *f, const char *key, const struct stat3 *st, const char *sep)
{
	fprintf(f, "\"%s\": {\"median\": %.4f, \"min\": %.4f, \"max\": %.4f}%s", key, st->med,
		st->min, st->max, sep);
}

static void write_machine(FILE *f)
{
	fprintf(f, "  \"machine\": {");
	json_kv_str(f, "kernel", mach.kernel, ", ");
	json_kv_str(f, "cpu", mach.cpu, ", ");
	json_kv_str(f, "thp", mach.thp, ", ");
	json_kv_str(f, "loadavg_start", mach.load_start, ", ");
	json_kv_str(f, "loadavg_end", mach.load_end, ", ");
	fprintf(f, "\"nproc\": %ld, \"mem_mib\": %ld, \"nofile_hard\": %ld, \"max_map_count\": %ld, "
		"\"others_cpu_busy\": %.4f},\n", mach.nproc, mach.mem_mib, mach.nofile_hard,
		mach.max_map_count, mach.others_busy);
	fprintf(f, "  \"limits_gbps\": {\"measured\": %s, \"bytes\": %zu, ",
		lim.measured ? "true" : "false", opts.limit_bytes);
	json_stat(f, "memcpy", &lim.memcpy_gbps, ", ");
	json_stat(f, "populate", &lim.populate_gbps, ", ");
	json_stat(f, "tmpfs_write", &lim.write_gbps, ", ");
	json_stat(f, "tmpfs_read", &lim.read_gbps, ", ");
	fprintf(f, "\"restore_bound\": %.4f},\n", restore_bound_gbps());
}

static void write_crest(FILE *f, const char *key, const struct crest_result *c)
{
	fprintf(f, "\"%s\": {\"status\": %d, \"wall_ms\": %.3f, \"total_ms\": %.3f, "
		"\"frozen_ms\": %.3f, \"stages_ms\": {", key, c->status, c->wall_ms, c->total_ms,
		c->frozen_ms);
	for (int i = 0; i < c->nr_stages; i++)
		fprintf(f, "%s\"%s\": %.3f", i ? ", " : "", c->stages[i].name, c->stages[i].ms);
	fprintf(f, "}}");
}

static void write_runs(FILE *f, const struct row *r)
{
	fprintf(f, ", \"runs\": [");
	for (int i = 0; i < r->n; i++) {
		const struct sample *s = &r->s[i];

		fprintf(f, "%s\n      {\"restore_ms\": %.3f, \"image_bytes\": %llu, ", i ? "," : "",
			s->restore_ms, (unsigned long long)s->image_bytes);
		write_crest(f, "dump", &s->dump);
		fprintf(f, ", ");
		write_crest(f, "restore", &s->restore);
		fprintf(f, "}");
	}
	fprintf(f, "]");
}

static void write_medians(FILE *f, const struct row *r)
{
	if (!r->n)
		return;
	fprintf(f, ", \"median\": {\"dump_ms\": %.3f, \"frozen_ms\": %.3f, \"restore_ms\": %.3f, "
		"\"dump_crest_total_ms\": %.3f, \"restore_crest_total_ms\": %.3f, \"image_mib\": %.3f}",
		row_median(r, get_dump_ms), row_median(r, get_frozen_ms),
		row_median(r, get_restore_ms), row_median(r, get_dump_crest_ms),
		row_median(r, get_restore_crest_ms), row_median(r, get_image_mib));
	fprintf(f, ", \"min\": {\"dump_ms\": %.3f, \"restore_ms\": %.3f}, \"max\": {\"dump_ms\": %.3f, "
		"\"restore_ms\": %.3f}", row_min(r, get_dump_ms), row_min(r, get_restore_ms),
		row_max(r, get_dump_ms), row_max(r, get_restore_ms));
}

static void write_row(FILE *f, const struct row *r, bool last)
{
	fprintf(f, "    {");
	json_kv_str(f, "group", r->group, ", ");
	json_kv_str(f, "name", r->name, ", ");
	json_kv_str(f, "data", r->wl.data, ", ");
	fprintf(f, "\"procs\": %ld, \"kib_per_proc\": %zu, \"threads\": %ld, \"fds\": %ld, "
		"\"vmas\": %ld, \"count\": %ld, \"compress\": %s, \"data_bytes\": %llu, ",
		r->wl.procs, r->wl.kib, r->wl.threads, r->wl.fds, r->wl.vmas, r->count,
		r->compress ? "true" : "false", (unsigned long long)row_data_bytes(r));
	fprintf(f, "\"target_dump_ms\": %.0f, \"target_restore_ms\": %.0f, \"ping_ms\": %.3f, "
		"\"setup_s\": %.3f, \"verified_runs\": %d, \"check_failed\": %s", r->target_dump_ms,
		r->target_restore_ms, r->ping_ms, r->setup_s, r->verified,
		r->check_failed ? "true" : "false");
	if (r->skipped[0]) {
		fprintf(f, ", ");
		json_kv_str(f, "skipped", r->skipped, "");
	}
	if (r->failed[0]) {
		fprintf(f, ", ");
		json_kv_str(f, "failed", r->failed, "");
	}
	write_medians(f, r);
	write_runs(f, r);
	fprintf(f, "}%s\n", last ? "" : ",");
}

int report_json(struct row *rows, int nr)
{
	FILE *f = fopen(opts.json, "we");

	if (!f) {
		note("cannot write %s: %s", opts.json, strerror(errno));
		return -errno;
	}
	fprintf(f, "{\n  ");
	json_kv_str(f, "date", mach.date, ",\n  ");
	json_kv_str(f, "images_dir", opts.workdir, ",\n  ");
	json_kv_str(f, "compress_option", opts.compress_opt, ",\n");
	fprintf(f, "  \"runs\": %d, \"small_runs\": %d, \"scale_runs\": %d,\n", opts.runs,
		opts.small_runs, opts.scale_runs);
	write_machine(f);
	fprintf(f, "  \"rows\": [\n");
	for (int i = 0; i < nr; i++)
		write_row(f, &rows[i], i == nr - 1);
	fprintf(f, "  ]\n}\n");
	if (fclose(f)) {
		note("writing %s: %s", opts.json, strerror(errno));
		return -EIO;
	}
	return 0;
}
