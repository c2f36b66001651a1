/*
 * crest dump: freeze the tree, read its state, write the image, then kill or resume it.
 * Each stage is one call below; any failure resumes every task exactly as it was.
 */
#define LOG_PREFIX "dump: "
#include "core/dump.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cli/opts.h"
#include "core/pstree.h"
#include "core/stats.h"
#include "files/files.h"
#include "image/img.h"
#include "infect/infect.h"
#include "mem/mem.h"
#include "ns/ns.h"
#include "ns/pidns.h"
#include "pstree.pb-c.h"
#include "task/task.h"
#include "util/log.h"
#include "util/util.h"

/* What is read from one process before anything is written. */
struct dump_proc {
	struct pstree_proc *p;
	TaskCore core;
	ThreadCore *threads;
	size_t nr_threads;	/* threads dumped so far */
	struct mem_map map;
};

struct dump_ctx {
	const struct crest_opts *opts;
	struct img_dir *dir;
	struct pstree tree;
	struct dump_proc *procs;
	struct files_dump *files;
	struct mem_shmem_set *shmem;
	struct stats stats;
};

/* Every process's session and group must be in the tree, or be the shell's (--shell-job). */
static int check_sessions(struct dump_ctx *ctx)
{
	struct pstree_proc *root = &ctx->tree.procs[0];

	for (size_t i = 0; i < ctx->tree.nr; i++) {
		struct pstree_proc *p = &ctx->tree.procs[i];
		bool ext_sid = !pstree_find(&ctx->tree, p->sid);
		bool ext_pgid = !pstree_find(&ctx->tree, p->pgid);

		if ((ext_sid && !ctx->opts->shell_job) || (ext_sid && p->sid != root->sid)) {
			pr_err("pid %d: its session %d is outside the tree: dump from the session leader, or use --shell-job (-j)",
			       p->pid, p->sid);
			return -EINVAL;
		}
		if ((ext_pgid && !ctx->opts->shell_job) || (ext_pgid && p->pgid != root->pgid)) {
			pr_err("pid %d: its process group %d is outside the tree: dump from the group leader, or use --shell-job (-j)",
			       p->pid, p->pgid);
			return -EINVAL;
		}
	}
	return 0;
}

static int stage_freeze(struct dump_ctx *ctx)
{
	int ret = pstree_freeze(ctx->opts->pid, ctx->opts->timeout_s * 1000, &ctx->tree);

	if (ret)
		return ret;
	stats_mark_frozen(&ctx->stats);
	ctx->procs = xzalloc(ctx->tree.nr * sizeof(*ctx->procs));
	if (!ctx->procs)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->tree.nr; i++)
		ctx->procs[i].p = &ctx->tree.procs[i];
	ret = ns_dump(ctx->dir, &ctx->tree);
	if (!ret)
		ret = check_sessions(ctx);
	return ret ? ret : pstree_find_sharing(&ctx->tree);
}

static int collect_threads(struct infect_ctl *ctl, struct dump_proc *dp)
{
	dp->threads = xzalloc(dp->p->nr_threads * sizeof(*dp->threads));
	if (!dp->threads)
		return -ENOMEM;
	for (size_t t = 0; t < dp->p->nr_threads; t++) {
		int ret;

		thread_core__init(&dp->threads[t]);
		ret = task_dump_thread(ctl, dp->p->threads[t], &dp->threads[t]);
		if (ret)
			return ret;
		dp->nr_threads++;
	}
	return 0;
}

static int collect_proc(struct dump_proc *dp)
{
	struct infect_ctl *ctl;
	uint64_t brk = 0;
	int ret;

	task_core__init(&dp->core);
	if (dp->p->zombie)
		return 0;
	ret = infect_ctl_open(dp->p->pid, dp->p->pid, &ctl);
	if (ret)
		return pr_errno(ret, "pid %d: cannot prepare remote calls", dp->p->pid);
	ret = task_dump_core(ctl, dp->p->pid, &dp->core);
	if (!ret)
		ret = collect_threads(ctl, dp);
	if (!ret)
		ret = mem_query_brk(ctl, dp->p->pid, &brk);
	/* Closing removes the scratch area, which must not appear among the mappings. */
	infect_ctl_close(ctl);
	return ret ? ret : mem_collect(dp->p->pid, brk, &dp->map);
}

static int stage_collect(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ctx->tree.nr; i++) {
		int ret = collect_proc(&ctx->procs[i]);

		if (ret)
			return ret;
	}
	return 0;
}

static int dump_shmem(struct dump_ctx *ctx, struct dump_proc *dp)
{
	for (size_t v = 0; v < dp->map.nr_vmas; v++) {
		VmaEntry *vma = dp->map.vmas[v];
		int ret;

		if (vma->kind != VMA_KIND__VMA_SHMEM)
			continue;
		ret = mem_shmem_dump(ctx->dir, ctx->shmem, dp->p->pid, vma);
		if (ret)
			return ret;
	}
	return 0;
}

static int stage_pages(struct dump_ctx *ctx)
{
	ctx->shmem = mem_shmem_set_new();
	if (!ctx->shmem)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->tree.nr; i++) {
		struct dump_proc *dp = &ctx->procs[i];
		uint64_t bytes = 0;
		int ret;

		if (dp->p->zombie)
			continue;
		ret = mem_dump_pages(ctx->dir, dp->p->pid, &dp->map, &bytes);
		if (!ret)
			ret = dump_shmem(ctx, dp);
		if (ret)
			return ret;
		ctx->stats.pages_bytes += bytes;
	}
	return 0;
}

static int stage_files(struct dump_ctx *ctx)
{
	int ret = files_dump_open(ctx->dir, ctx->opts, &ctx->files);

	/* A table shared by several processes is dumped once, from the first of them. */
	for (size_t i = 0; !ret && i < ctx->tree.nr; i++)
		if (!ctx->procs[i].p->zombie && !ctx->procs[i].p->files_owner)
			ret = files_dump_process(ctx->files, ctx->procs[i].p->pid);
	if (!ret)
		ret = files_dump_finish(ctx->files);
	return ret;
}

/* Records and image names carry the pids the tree sees (pidns.c); crest worked with its own. */
/*
 * Pending signals are read again as late as possible: one sent to the frozen tree after the
 * collect stage stays pending (the threads are stopped) and must be in the image, or a dump
 * that kills the tree would drop it. Returns 1 if any queue grew since the last read.
 */
static int refresh_pending(struct dump_proc *dp)
{
	ProtobufCBinaryData *info = NULL;
	size_t nr = 0;
	int grew = 0, ret = task_dump_pending(dp->p->pid, true, &info, &nr);

	if (ret)
		return ret;
	grew |= nr != dp->core.n_shared_siginfo;
	task_free_pending(dp->core.shared_siginfo, dp->core.n_shared_siginfo);
	dp->core.shared_siginfo = info;
	dp->core.n_shared_siginfo = nr;
	for (size_t t = 0; t < dp->nr_threads; t++) {
		ThreadCore *th = &dp->threads[t];

		info = NULL;
		nr = 0;
		ret = task_dump_pending(th->tid, false, &info, &nr);
		if (ret)
			return ret;
		grew |= nr != th->n_siginfo;
		task_free_pending(th->siginfo, th->n_siginfo);
		th->siginfo = info;
		th->n_siginfo = nr;
	}
	return grew;
}

/* Records hold the tree's view of pids; dp keeps crest's, so this may run twice. */
static int write_core(struct dump_ctx *ctx, struct dump_proc *dp)
{
	pid_t pid = pidns_view(dp->p->pid);
	struct img *img = img_create(ctx->dir, IMG_MAGIC_CORE, "core-%d.img", pid);
	TaskCore core = dp->core;
	int ret;

	if (!img)
		return -errno;
	core.pid = pid;
	ret = img_write_msg(img, &core.base);
	for (size_t t = 0; !ret && t < dp->nr_threads; t++) {
		ThreadCore th = dp->threads[t];

		th.tid = pidns_view(th.tid);
		ret = img_write_msg(img, &th.base);
	}
	return ret ? (img_close(img), ret) : img_close(img);
}

/* Writes the core image of every live process whose signals are new (all: changed_only 0). */
static int write_cores(struct dump_ctx *ctx, bool changed_only, bool *wrote)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < ctx->tree.nr; i++) {
		struct dump_proc *dp = &ctx->procs[i];
		int grew;

		if (dp->p->zombie)
			continue;
		grew = refresh_pending(dp);
		if (grew < 0)
			return grew;
		if (changed_only && !grew)
			continue;
		ret = write_core(ctx, dp);
		*wrote = true;
	}
	return ret;
}

/* A session or group the tree cannot see (outside its pid namespace) cannot be restored. */
static int view_of_group(const struct pstree_proc *p, pid_t id, const char *what, uint32_t *ret)
{
	*ret = pidns_view(id);
	if (*ret)
		return 0;
	pr_err("pid %d: its %s %d is outside its pid namespace: crest cannot restore that (give the tree its own session, as crest run does)",
	       p->pid, what, id);
	return -EOPNOTSUPP;
}

static int write_pstree(struct dump_ctx *ctx)
{
	struct img *img = img_create(ctx->dir, IMG_MAGIC_PSTREE, "pstree.img");
	int ret = 0;

	if (!img)
		return -errno;
	for (size_t i = 0; !ret && i < ctx->tree.nr; i++) {
		struct pstree_proc *p = &ctx->tree.procs[i];
		PstreeEntry pe = PSTREE_ENTRY__INIT;
		uint32_t tids[p->nr_threads + 1];

		for (size_t t = 0; t < p->nr_threads; t++)
			tids[t] = pidns_view(p->threads[t]);
		pe.pid = pidns_view(p->pid);
		pe.ppid = pidns_view(p->ppid);
		ret = view_of_group(p, p->pgid, "process group", &pe.pgid);
		if (!ret)
			ret = view_of_group(p, p->sid, "session", &pe.sid);
		if (ret)
			break;
		pe.n_threads = p->nr_threads;
		pe.threads = tids;
		pe.has_zombie = pe.has_exit_status = p->zombie;
		pe.zombie = p->zombie;
		pe.exit_status = p->exit_status;
		pe.has_files_owner = p->files_owner != 0;
		pe.files_owner = pidns_view(p->files_owner);
		pe.has_fs_owner = p->fs_owner != 0;
		pe.fs_owner = pidns_view(p->fs_owner);
		if (p->zombie)
			pe.comm = p->comm;
		ret = img_write_msg(img, &pe.base);
	}
	return ret ? (img_close(img), ret) : img_close(img);
}

static int stage_finish(struct dump_ctx *ctx)
{
	Inventory inv = INVENTORY__INIT;
	bool wrote = false;
	int ret = write_pstree(ctx);

	if (!ret)
		ret = write_cores(ctx, false, &wrote);
	for (size_t i = 0; !ret && i < ctx->tree.nr; i++) {
		struct dump_proc *dp = &ctx->procs[i];

		if (!dp->p->zombie)
			ret = mem_write_map(ctx->dir, pidns_view(dp->p->pid), &dp->map);
	}
	if (ret)
		return ret;
	inv.format_version = IMG_FORMAT_VERSION;
	inv.root_pid = pidns_view(ctx->tree.procs[0].pid);
	inv.crest_version = CREST_VERSION;
	inv.has_shell_job = true;
	inv.shell_job = ctx->opts->shell_job;
	inv.has_page_size = true;
	inv.page_size = sysconf(_SC_PAGESIZE);
	ret = imgdir_finish(ctx->dir, &inv);
	/*
	 * A signal that came while the files were written: once more, core and inventory. What
	 * comes after this last look and before the kill (microseconds) is still lost.
	 */
	wrote = false;
	if (!ret)
		ret = write_cores(ctx, true, &wrote);
	if (!ret && wrote)
		ret = imgdir_finish(ctx->dir, &inv);
	return ret;
}

static const struct dump_stage {
	const char *name;
	int (*run)(struct dump_ctx *ctx);
} dump_stages[] = {
	{ "freeze", stage_freeze },	/* seize every thread of the tree */
	{ "collect", stage_collect },	/* registers, signals, mappings: into memory */
	{ "pages", stage_pages },	/* page contents: straight to the image */
	{ "files", stage_files },	/* fd tables and file descriptions */
	{ "finish", stage_finish },	/* records, then inventory.img last */
};

/* CREST_FAIL_AT=<stage> makes that stage fail, to test that a failed dump harms nothing. */
static int injected_failure(const char *stage)
{
	const char *want = getenv("CREST_FAIL_AT");

	if (!want || strcmp(want, stage))
		return 0;
	pr_err("stage %s: failing on purpose (CREST_FAIL_AT)", stage);
	return -ECANCELED;
}

static void dump_ctx_free(struct dump_ctx *ctx)
{
	for (size_t i = 0; ctx->procs && i < ctx->tree.nr; i++) {
		struct dump_proc *dp = &ctx->procs[i];

		task_free_core(&dp->core);
		for (size_t t = 0; t < dp->nr_threads; t++)
			task_free_thread(&dp->threads[t]);
		free(dp->threads);
		mem_map_free(&dp->map);
	}
	free(ctx->procs);
	files_dump_free(ctx->files);
	mem_shmem_set_free(ctx->shmem);
	pstree_free(&ctx->tree);
}

/* Runs the stages; on failure resumes every task untouched. */
static int run_stages(struct dump_ctx *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(dump_stages); i++) {
		uint64_t t0 = now_ns();
		int ret = injected_failure(dump_stages[i].name);

		if (!ret)
			ret = dump_stages[i].run(ctx);
		stats_add_stage(&ctx->stats, dump_stages[i].name, now_ns() - t0);
		if (ret) {
			/* The failure itself was reported where it was seen: one error line. */
			pr_info("dump of pid %d failed at stage %s; the tree is left running",
				ctx->opts->pid, dump_stages[i].name);
			pstree_release(&ctx->tree);
			return ret;
		}
	}
	return 0;
}

int crest_dump(const struct crest_opts *opts)
{
	struct dump_ctx ctx = { .opts = opts };
	int ret;

	stats_start(&ctx.stats);
	ret = imgdir_open_write(opts->images_dir, &ctx.dir);
	if (ret)
		return ret;
	/* zstd's fastest regular level: compression must keep up with the copy (issue 5). */
	imgdir_set_compress(ctx.dir, opts->compress ? 1 : 0);
	ret = run_stages(&ctx);
	if (!ret) {
		if (opts->leave_running)
			pstree_release(&ctx.tree);
		else
			pstree_kill(&ctx.tree);
		/* Frozen until killed: tearing down the dead tree's memory is not freeze time. */
		stats_mark_thawed(&ctx.stats);
		if (!opts->leave_running)
			pstree_wait_killed(&ctx.tree);
		pr_info("dumped %zu process(es) of pid %d to %s", ctx.tree.nr, opts->pid,
			opts->images_dir);
		if (opts->display_stats)
			stats_print(&ctx.stats, "dump");
	}
	dump_ctx_free(&ctx);
	imgdir_close(ctx.dir);
	pidns_dump_done();
	return ret;
}
