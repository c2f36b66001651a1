/*
 * crestbench: `make bench`. Dumps and restores bench/workload trees with build/crest, measures
 * the machine's own limits in the same run, prints tables and writes them as JSON.
 * main.c plans the rows, limits.c measures the machine, workload.c drives a workload tree,
 * crest.c runs crest and reads its --display-stats, row.c runs one row, report.c prints.
 */
#ifndef CRESTBENCH_BENCH_H
#define CRESTBENCH_BENCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KiB 1024UL
#define MiB (1024UL * 1024)
#define MAX_RUNS 51
#define MAX_STAGES 24
#define MAX_ROWS 96
#define MAX_STEPS 8		/* counts in one scaling series */

/* --- settings (main.c) ------------------------------------------------------------------ */

struct settings {
	int runs;		/* BENCH_RUNS: runs of a main row and of a limit */
	int small_runs;		/* BENCH_SMALL_RUNS: runs of the small-process row */
	int scale_runs;		/* BENCH_SCALE_RUNS: most runs of a scaling row */
	double main_row_s;	/* BENCH_MAIN_ROW_S: a main row stops repeating after this */
	double row_budget_s;	/* BENCH_ROW_S: a scaling row stops repeating after this */
	double budget_s;	/* BENCH_BUDGET_S: rows not started by then are skipped */
	size_t limit_bytes;	/* BENCH_LIMIT_MIB: buffer of each limit measurement */
	const char *crest;	/* build/crest */
	const char *workload;	/* build/bench/workload */
	const char *json;	/* build/bench/bench.json */
	const char *only;	/* BENCH_ONLY: comma-separated groups to run, or NULL for all */
	bool sabotage;		/* BENCH_SABOTAGE=1: every workload damages its data (self-test) */
	char compress_opt[64];	/* the dump option that compresses, "" when crest has none */
	char workdir[256];	/* /dev/shm/crestbench-PID: the FIFO and the images */
	double start_s;		/* when the run began (now_s()) */
};

extern struct settings opts;
/* Set by SIGINT/SIGTERM/SIGHUP: every wait gives up, and main cleans up. */
extern volatile sig_atomic_t stop_requested;

/* --- helpers (util.c) ------------------------------------------------------------------- */

double now_s(void);
double median(const double *v, int n);
double min_of(const double *v, int n);
double max_of(const double *v, int n);
/* MemAvailable in MiB; free MiB of the file system holding path. */
long mem_available_mib(void);
long fs_free_mib(const char *path);
/* Removes a directory tree; 0 or -errno. */
int remove_tree(const char *path);
/* Total bytes of the regular files under path. */
uint64_t tree_bytes(const char *path);
/* Waits until none of pids exists any more, reaping those that are our children (we are a
 * subreaper); 0, or -ETIMEDOUT naming none of them. */
int wait_pids_gone(const pid_t *pids, long n, double timeout_s);
void reap_children(void);
void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...);

/* --- the machine (limits.c) ------------------------------------------------------------- */

struct stat3 {
	double med, min, max;
};

struct limits {
	bool measured;
	struct stat3 memcpy_gbps;	/* memcpy, populated -> populated */
	struct stat3 populate_gbps;	/* mmap + MADV_POPULATE_WRITE of fresh memory */
	struct stat3 write_gbps;	/* write() to tmpfs, 4 MiB writes */
	struct stat3 read_gbps;		/* read() from tmpfs into populated memory, 4 MiB reads */
};

struct machine {
	char date[32], kernel[72], cpu[128], thp[64], load_start[64], load_end[64];
	long nproc, mem_mib, nofile_hard, max_map_count;
	double cpu_busy0, cpu_total0, others_busy;	/* share of the CPUs others used */
};

extern struct limits lim;
extern struct machine mach;

void machine_info(void);
void machine_contention(void);
int measure_limits(void);
/* GB/s that a restore can reach at best: populate, then read, one after the other. */
double restore_bound_gbps(void);

/* --- crest (crest.c) -------------------------------------------------------------------- */

struct stage {
	char name[24];
	double ms;
};

struct crest_result {
	int status;		/* exit status, or 128+signal, or -1 when it had to be killed */
	double wall_ms;		/* fork until crest exited */
	double total_ms;	/* crest's own "total" (0 if it printed none) */
	double frozen_ms;	/* crest's "frozen" (dump) */
	int nr_stages;
	struct stage stages[MAX_STAGES];	/* every other "  NAME VALUE ms" line */
	char last_line[512];	/* crest's last line of output, for errors */
};

/* Runs crest with argv (argv[0] is ignored) and waits for it, at most timeout_s. */
int crest_run(char *const argv[], double timeout_s, struct crest_result *res);
/* Finds out whether crest dump has a --compress option; fills opts.compress_opt. */
void crest_probe_compress(void);
/* SIGKILL to the crest process running now, if any (for the signal handler). */
void crest_kill_current(void);

/* --- a workload tree (workload.c) ------------------------------------------------------- */

struct wl_config {
	long procs, threads, fds, vmas;
	size_t kib;		/* data per process */
	const char *data;	/* "random" or "half" (see bench/workload.c) */
	bool sabotage;
};

struct workload {
	struct wl_config cfg;
	pid_t *pids;		/* by process index; [0] is the root */
	long nr_pids;
	int fifo;		/* read end (opened O_RDWR: never EOF between writers) */
	char fifo_path[300];
	char buf[8192];		/* partial line carried between reads */
	size_t buf_len;
	char error[512];	/* first E or FAIL line */
};

int wl_start(struct workload *wl, const struct wl_config *cfg, double timeout_s);
/* Sends sig to every process and waits for one line with tag from each; ms it took. */
int wl_ask(struct workload *wl, int sig, char tag, double timeout_s, double *ms);
/* SIGKILL to every process, waits until all are gone; frees wl. */
void wl_stop(struct workload *wl);
/* pids of the running workload, for the signal handler: kills them on SIGINT/SIGTERM. */
void wl_kill_current(void);

/* --- one row (row.c) -------------------------------------------------------------------- */

struct sample {
	struct crest_result dump, restore;
	double restore_ms;	/* crest restore started -> every process answered a ping */
	uint64_t image_bytes;
};

struct row {
	const char *group;	/* main, small, compress, procs, threads, fds, vmas */
	char name[64];
	struct wl_config wl;
	long count;		/* the scaled count, in scaling rows */
	int step;		/* index of count in its series (0 elsewhere) */
	bool compress;
	int max_runs;
	double budget_s;	/* stop repeating once the row has taken this long (0: never) */
	double start_by_s;	/* skipped if not started this long after crestbench began */
	double target_dump_ms, target_restore_ms;	/* 0: no target */

	int n;			/* runs done */
	struct sample s[MAX_RUNS];
	double ping_ms;		/* ping round trip of the live tree, median of 3 */
	double setup_s;		/* workload start until ready */
	int verified;		/* runs whose check passed */
	bool check_failed;	/* a restored tree held wrong memory or lost a thread */
	char skipped[256];
	char failed[640];
};

void row_run(struct row *r);
double row_median(const struct row *r, double (*get)(const struct sample *));
double row_min(const struct row *r, double (*get)(const struct sample *));
double row_max(const struct row *r, double (*get)(const struct sample *));
double get_dump_ms(const struct sample *s);
double get_frozen_ms(const struct sample *s);
double get_restore_ms(const struct sample *s);
double get_dump_crest_ms(const struct sample *s);
double get_restore_crest_ms(const struct sample *s);
double get_image_mib(const struct sample *s);
/* Median over the runs of stage name of the dump (restore false) or restore; -1 if absent. */
double row_stage_median(const struct row *r, bool restore, const char *name);
/* Bytes of data the row's tree holds (its workload's pages). */
uint64_t row_data_bytes(const struct row *r);

/* --- output (report.c) ------------------------------------------------------------------ */

void report_print(struct row *rows, int nr_rows);
int report_json(struct row *rows, int nr_rows);

#endif
