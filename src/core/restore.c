/*
 * crest restore: the controller. It reads and checks the whole image before creating
 * anything, forks the root (which forks the rest), lets the processes through the stages of
 * restore-task.c one barrier at a time, and finally loads every thread's registers through
 * ptrace and removes the restorer. On any failure it kills everything it created.
 */
#define LOG_PREFIX "restore: "
#include "core/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/arch.h"
#include "cli/opts.h"
#include "files/files.h"
#include "image/img.h"
#include "infect/infect.h"
#include "ns/ns.h"
#include "ns/pidns.h"
#include "task/task.h"
#include "util/futex.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define RESTORE_TIMEOUT_MS 120000

static int check_threads(struct rproc *rp)
{
	pid_t pid = rp->pe->pid;

	if (rp->nr_threads != rp->pe->n_threads || !rp->nr_threads || rp->threads[0]->tid != rp->pe->pid)
		return pr_errno(-EINVAL, "core-%d.img: has %zu threads, pstree.img says %zu",
				pid, rp->nr_threads, rp->pe->n_threads);
	for (size_t t = 0; t < rp->nr_threads; t++)
		if (rp->threads[t]->tid != rp->pe->threads[t])
			return pr_errno(-EINVAL, "core-%d.img: thread %u does not match pstree.img",
					pid, rp->threads[t]->tid);
	return 0;
}

/* core-<pid>.img: the task record, then one record per thread. */
static int read_core(struct restore_ctx *ctx, struct rproc *rp)
{
	pid_t pid = rp->pe->pid;
	struct img *img = img_open(ctx->dir, IMG_MAGIC_CORE, "core-%d.img", pid);
	int ret;

	if (!img)
		return errno == ENOENT ? pr_errno(-ENOENT, "core-%d.img: missing from the image", pid) : -errno;
	ret = img_read(img, task_core, &rp->core);
	if (!ret && !rp->core)
		ret = pr_errno(-EINVAL, "core-%d.img: empty", pid);
	if (!ret)
		ret = img_read_rest(img, thread_core, &rp->threads, &rp->nr_threads);
	img_close(img);
	return ret ? ret : check_threads(rp);
}

static int link_parent(struct restore_ctx *ctx, struct rproc *rp)
{
	struct rproc *parent = NULL;

	if (rp->idx == 0)
		return 0;
	for (size_t i = 0; i < rp->idx; i++)
		if (ctx->procs[i].pe->pid == rp->pe->ppid)
			parent = &ctx->procs[i];
	if (!parent || parent->pe->zombie) {
		pr_err("pstree.img: pid %u has parent %u, which is not restored before it",
		       rp->pe->pid, rp->pe->ppid);
		return -EINVAL;
	}
	rp->parent = parent;
	return 0;
}

/* Whether a clone by c gives pe the fd table and fs it shares (the dump's rule, pstree-share.c). */
static bool gives_all(const struct rproc *c, const PstreeEntry *pe)
{
	return (!pe->files_owner || pe->files_owner == c->pe->pid ||
		pe->files_owner == c->pe->files_owner) &&
	       (!pe->fs_owner || pe->fs_owner == c->pe->pid || pe->fs_owner == c->pe->fs_owner);
}

static uint32_t exit_signal_of(const struct rproc *rp)
{
	return rp->core && rp->core->has_exit_signal ? rp->core->exit_signal : SIGCHLD;
}

/*
 * A sibling before rp that can clone it with CLONE_PARENT: it holds what rp shares, rp ends
 * in its session or leads its own, and clone3 gives rp the sibling's exit signal.
 */
static struct rproc *sibling_creator(struct restore_ctx *ctx, struct rproc *rp)
{
	for (size_t i = 0; i < rp->idx; i++) {
		struct rproc *q = &ctx->procs[i];

		if (!q->pe->zombie && q->parent == rp->parent && gives_all(q, rp->pe) &&
		    (q->pe->sid == rp->pe->sid || rp->pe->sid == rp->pe->pid) &&
		    exit_signal_of(q) == exit_signal_of(rp))
			return q;
	}
	return NULL;
}

/*
 * Who clones rp, and with which of CLONE_FILES, CLONE_FS, CLONE_PARENT: a child shares the
 * table (fs) that the process cloning it holds, so that is its parent if the parent shares
 * them too, else a sibling that does.
 */
static int plan_creator(struct restore_ctx *ctx, struct rproc *rp)
{
	const PstreeEntry *pe = rp->pe;
	struct rproc *c = rp->parent;

	if (!c)
		return 0;
	if (!gives_all(c, pe)) {
		c = sibling_creator(ctx, rp);
		if (!c) {
			pr_err("pstree.img: pid %u shares the fd table of %u or the cwd of %u, which neither its parent nor a sibling can give it: cannot restore that",
			       pe->pid, pe->files_owner, pe->fs_owner);
			return -EINVAL;
		}
		rp->share_flags |= CLONE_PARENT;
	}
	rp->share_flags |= (pe->files_owner ? CLONE_FILES : 0) | (pe->fs_owner ? CLONE_FS : 0);
	rp->creator = c;
	c->children = xrealloc(c->children, (c->nr_children + 1) * sizeof(rp));
	if (!c->children)
		return -ENOMEM;
	c->children[c->nr_children++] = rp;
	return 0;
}

static int read_pstree(struct restore_ctx *ctx)
{
	struct img *img = img_open(ctx->dir, IMG_MAGIC_PSTREE, "pstree.img");
	PstreeEntry **entries = NULL;
	int ret;

	if (!img)
		return errno == ENOENT ? pr_errno(-ENOENT, "pstree.img: missing from the image") : -errno;
	ret = img_read_rest(img, pstree_entry, &entries, &ctx->nr_procs);
	img_close(img);
	if (ret)
		return ret;
	if (!ctx->nr_procs || entries[0]->pid != ctx->inv->root_pid)
		ret = pr_errno(-EINVAL, "pstree.img: does not start with the root pid %u", ctx->inv->root_pid);
	ctx->procs = xzalloc(ctx->nr_procs * sizeof(*ctx->procs) + 1);
	for (size_t i = 0; ctx->procs && i < ctx->nr_procs; i++) {
		ctx->procs[i].pe = entries[i];
		ctx->procs[i].idx = i;
	}
	free(entries);
	return ctx->procs ? ret : -ENOMEM;
}

static int read_tree(struct restore_ctx *ctx)
{
	int ret = read_pstree(ctx);

	for (size_t i = 0; !ret && i < ctx->nr_procs; i++) {
		struct rproc *rp = &ctx->procs[i];

		ret = link_parent(ctx, rp);
		if (!ret && !rp->pe->zombie) {
			ret = read_core(ctx, rp);
			if (!ret)
				ret = mem_read_map(ctx->dir, rp->pe->pid, &rp->map);
			ctx->nr_live++;
			ctx->nr_threads += rp->nr_threads;
		}
		if (!ret)
			ret = plan_creator(ctx, rp);
	}
	return ret;
}

/*
 * A pid is taken while /proc/PID exists. A process killed by the dump stays a zombie until
 * its parent reaps it, which may take a moment: give those up to two seconds.
 */
static bool pid_taken(pid_t pid)
{
	char path[32];

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	for (int tries = 0; tries < 200; tries++) {
		char *buf = read_file_at(AT_FDCWD, path, NULL), *p;
		bool dying;

		if (!buf)
			return false;
		p = strrchr(buf, ')');
		dying = p && (p[2] == 'Z' || p[2] == 'X');
		free(buf);
		if (!dying)
			return true;
		usleep(10000);
	}
	return true;
}

/* Every pid and tid must be free before anything is created: fail early and cleanly. */
static int check_pids_free(struct restore_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_procs; i++) {
		PstreeEntry *pe = ctx->procs[i].pe;

		for (size_t t = 0; t <= pe->n_threads; t++) {
			pid_t pid = t ? (pid_t)pe->threads[t - 1] : (pid_t)pe->pid;

			if (pid_taken(pid)) {
				pr_err("pid %d is already in use: cannot restore %s %d of the image",
				       pid, t ? "thread" : "process", pid);
				return -EEXIST;
			}
		}
	}
	return 0;
}

/*
 * Each shared memory object is created by the first process that maps it, unless it is also
 * open as a descriptor (a memfd): then the owner of that description creates both, as one.
 */
static int plan_shmem(struct restore_ctx *ctx)
{
	size_t cap = 0;

	for (size_t i = 0; i < ctx->nr_procs; i++) {
		struct rproc *rp = &ctx->procs[i];

		for (size_t v = 0; v < rp->map.nr_vmas; v++) {
			const VmaEntry *vma = rp->map.vmas[v];
			bool known = false;
			uint32_t file_id;

			if (vma->kind != VMA_KIND__VMA_SHMEM)
				continue;
			for (size_t s = 0; s < ctx->nr_shmem; s++)
				known |= ctx->shmem[s].ino == vma->ino;
			if (known)
				continue;
			if (xgrow((void **)&ctx->shmem, &cap, ctx->nr_shmem + 1, sizeof(*ctx->shmem)))
				return -ENOMEM;
			file_id = files_restore_shmem_entry(ctx->files, vma->ino);
			ctx->shmem[ctx->nr_shmem++] = (struct rshmem){ vma->ino,
				file_id ? files_restore_owner(ctx->files, file_id) : (pid_t)rp->pe->pid,
				vma, file_id };
		}
	}
	return 0;
}

static int highest_open_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), max = fd;

	/* Good enough: crest opened few files so far and closes none in between. */
	for (int i = fd + 1; i < fd + 64; i++)
		if (fcntl(i, F_GETFD) >= 0)
			max = i;
	close(fd);
	return max;
}

/*
 * Service fds sit above every fd number of the tree and of crest, so that creating and
 * taking descriptions never collides with the numbers they are installed at.
 */
static int plan_fds(struct restore_ctx *ctx)
{
	size_t nr_svc = files_restore_nr_entries(ctx->files) + ctx->nr_shmem + 2;
	struct rlimit lim;

	ctx->svc_base = MAX(files_restore_max_fd(ctx->files), highest_open_fd()) + 1;
	ctx->svc_base = MAX(ctx->svc_base, 64);
	ctx->log_fd_min = ctx->svc_base + nr_svc;
	if (getrlimit(RLIMIT_NOFILE, &lim))
		return -errno;
	ctx->nofile_soft = lim.rlim_cur;
	if ((rlim_t)ctx->log_fd_min + 1 > lim.rlim_cur) {
		lim.rlim_cur = lim.rlim_max;
		if ((rlim_t)ctx->log_fd_min + 1 > lim.rlim_max || setrlimit(RLIMIT_NOFILE, &lim)) {
			pr_err("the tree needs %d descriptors, more than RLIMIT_NOFILE allows (%llu)",
			       ctx->log_fd_min + 1, (unsigned long long)lim.rlim_max);
			return -EMFILE;
		}
	}
	return log_move_fd(ctx->log_fd_min);
}

/* The control area is shared by every process, so it must avoid every process's layout. */
static int map_ctl(struct restore_ctx *ctx)
{
	struct mem_range *avoid = NULL;
	size_t nr = 0, cap = 0;
	uint64_t addr;
	int ret = 0;

	ctx->ctl_len = ALIGN_UP(sizeof(struct rst_ctl) + ctx->nr_procs * sizeof(struct rst_slot), 4096);
	for (size_t i = 0; !ret && i < ctx->nr_procs; i++)
		ret = mem_map_ranges(&ctx->procs[i].map, &avoid, &nr, &cap);
	if (!ret)
		ret = mem_reserve_free(avoid, nr, ctx->ctl_len, &addr);
	free(avoid);
	if (ret)
		return ret;
	ctx->ctl = mmap((void *)addr, ctx->ctl_len, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (ctx->ctl == MAP_FAILED)
		return pr_errno(-errno, "cannot map the restore control area");
	ctx->slots = (struct rst_slot *)(ctx->ctl + 1);
	pr_debug("control area at %#" PRIx64 " (%" PRIu64 " bytes)", addr, ctx->ctl_len);
	return 0;
}

static const char *rst_step_name(uint32_t step)
{
	static const char *const names[] = {
		"", "rseq unregister", "unmap crest", "remap memory", "protect memory",
		"map vdso", "set mm", "sigactions", "create threads", "thread state",
		"pending signals", "park",
	};

	return step < ARRAY_SIZE(names) ? names[step] : "?";
}

static int report_ctl_error(struct restore_ctx *ctx)
{
	struct rst_ctl *ctl = ctx->ctl;

	/* The restorer has no log of its own; crest code in a process logged its failure. */
	if (ctl->error_step)
		pr_err("restore failed in pid %u, restorer step '%s' (address %#" PRIx64 "): %s",
		       ctl->error_pid, rst_step_name(ctl->error_step), ctl->error_addr,
		       strerror(-ctl->error));
	else
		pr_info("restore failed in pid %u: %s", ctl->error_pid, strerror(-ctl->error));
	return ctl->error;
}

/* The pid of a created process that is gone (not a zombie by design), or 0. */
static pid_t find_dead(struct restore_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_procs; i++) {
		pid_t pid = ctx->slots[i].pid;
		char path[64], state = 0;
		FILE *f;

		if (!pid || ctx->procs[i].pe->zombie)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (f) {
			if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
				state = 0;
			fclose(f);
		}
		if (!f || state == 'Z' || state == 'X')
			return pid;
	}
	return 0;
}

/* Waits until *counter reaches want, watching for errors, deaths and the deadline. */
static int wait_count(struct restore_ctx *ctx, uint32_t *counter, uint32_t want, uint64_t deadline)
{
	pid_t dead;

	for (;;) {
		uint32_t cur = atomic_load32(counter);

		if (atomic_load32((uint32_t *)&ctx->ctl->error))
			return report_ctl_error(ctx);
		if (cur >= want)
			return 0;
		dead = find_dead(ctx);
		if (dead) {
			/* A process that failed said why before it exited: then that is the report. */
			if (atomic_load32((uint32_t *)&ctx->ctl->error))
				return report_ctl_error(ctx);
			pr_err("pid %d died during restore", dead);
			return -ESRCH;
		}
		if (now_ns() > deadline) {
			pr_err("restore timed out: %u of %u processes arrived", cur, want);
			return -ETIMEDOUT;
		}
		futex_wait_ms(counter, cur, 20);
	}
}

/* The time since the last mark, as the stage name; then a new mark. */
static void stage_done(struct restore_ctx *ctx, const char *name, uint64_t *mark)
{
	uint64_t now = now_ns();

	stats_add_stage(&ctx->stats, name, now - *mark);
	*mark = now;
}

static int run_barriers(struct restore_ctx *ctx, uint64_t deadline, uint64_t *mark)
{
	static const struct {
		enum restore_stage stage;
		const char *name;	/* for --display-stats: what the processes did until it */
	} stages[] = { { RS_CREATE, "create" }, { RS_OWN, "files" }, { RS_TAKE, "memory" } };
	int ret;

	__atomic_store_n(&ctx->ctl->stage, RS_CREATE, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < ARRAY_SIZE(stages); i++) {
		uint32_t want = stages[i].stage == RS_CREATE ? ctx->nr_procs : ctx->nr_live;

		ret = wait_count(ctx, &ctx->ctl->stage_arrived, want, deadline);
		if (ret)
			return ret;
		stage_done(ctx, stages[i].name, mark);
		__atomic_store_n(&ctx->ctl->stage_arrived, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&ctx->ctl->stage, stages[i].stage + 1, __ATOMIC_SEQ_CST);
		futex_wake_all(&ctx->ctl->stage);
	}
	ret = wait_count(ctx, &ctx->ctl->threads_parked, ctx->nr_threads, deadline);
	if (!ret)
		stage_done(ctx, "restorer", mark);
	return ret;
}

/* Page bytes every process read into its memory, as each counted in its slot. */
static uint64_t pages_restored(const struct restore_ctx *ctx)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < ctx->nr_procs; i++)
		bytes += __atomic_load_n(&ctx->slots[i].pages_bytes, __ATOMIC_ACQUIRE);
	return bytes;
}

/*
 * From here on the controller acts on crest's view of each pid (pidns_host): the image and
 * the restored tree have their own when the tree has its own pid namespace.
 */
static int seize_threads(struct rproc *rp)
{
	for (size_t t = 0; t < rp->nr_threads; t++) {
		int ret = infect_seize(pidns_host(rp->threads[t]->tid), 10000);

		if (ret)
			return pr_errno(ret, "pid %d: cannot seize restored thread %u", rp->pe->pid,
					rp->threads[t]->tid);
	}
	return 0;
}

/* Registers, extended state and signal mask: the very last thing before the tree runs. */
static int load_threads(struct rproc *rp)
{
	for (size_t t = 0; t < rp->nr_threads; t++) {
		const ThreadCore *tc = rp->threads[t];
		int ret = arch_restore_thread_regs(pidns_host(tc->tid), tc);

		if (ret)
			return ret;
		if (ptrace(PTRACE_SETSIGMASK, pidns_host(tc->tid), sizeof(uint64_t), &tc->blocked))
			return pr_errno(-errno, "thread %u: cannot set the signal mask", tc->tid);
	}
	return 0;
}

/* The restorer region and the control area go from outside, by a remote munmap. */
static int unmap_restorer(struct restore_ctx *ctx, struct rproc *rp, struct infect_ctl *ctl)
{
	struct rst_slot *slot = &ctx->slots[rp->idx];
	long args[2][6] = {
		{ (long)slot->bootstrap_start, (long)slot->bootstrap_len },
		{ (long)ctx->ctl, (long)ctx->ctl_len },
	};
	long res;
	int ret = 0;

	pr_debug("pid %d: removing the restorer at %#" PRIx64 " (%" PRIu64 " bytes)", rp->pe->pid,
		 slot->bootstrap_start, slot->bootstrap_len);
	for (int i = 0; !ret && i < 2; i++) {
		ret = infect_syscall(ctl, SYS_munmap, args[i], &res);
		if (!ret && res < 0)
			ret = pr_errno((int)res, "pid %d: cannot unmap the restorer", rp->pe->pid);
	}
	return ret;
}

/*
 * Every thread is parked in the restorer. Seized, they run the remote calls of the task
 * kinds (state only a task can set on itself: credentials, timers, ...) on the restorer's
 * stack, where no target stack is disturbed; the restorer goes; closing the remote channel
 * puts the restorer-time registers back, and only then are the target's registers loaded.
 */
static int finalize_proc(struct restore_ctx *ctx, struct rproc *rp)
{
	pid_t host = ctx->slots[rp->idx].pid;
	struct infect_ctl *ctl = NULL;
	int ret = pidns_restore_learn(host);

	if (!ret)
		ret = seize_threads(rp);
	if (!ret)
		ret = infect_ctl_open(host, host, &ctl);
	if (!ret)
		ret = task_restore_final(ctl, host, rp->core, rp->threads, rp->nr_threads);
	if (!ret)
		ret = unmap_restorer(ctx, rp, ctl);
	if (ctl)
		infect_ctl_close(ctl);
	return ret ? ret : load_threads(rp);
}

static int finalize(struct restore_ctx *ctx)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < ctx->nr_procs; i++)
		if (!ctx->procs[i].pe->zombie)
			ret = finalize_proc(ctx, &ctx->procs[i]);
	if (ret)
		return ret;
	for (size_t i = 0; i < ctx->nr_procs; i++)
		for (size_t t = 0; t < ctx->procs[i].nr_threads; t++)
			infect_release(pidns_host(ctx->procs[i].threads[t]->tid));
	return 0;
}

/* Nothing half-restored may stay: kill every process created so far. */
static void abort_restore(struct restore_ctx *ctx)
{
	__atomic_store_n(&ctx->ctl->abort, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&ctx->ctl->stage);
	for (size_t i = ctx->nr_procs; i-- > 0;)
		if (ctx->slots[i].pid)
			kill(ctx->slots[i].pid, SIGKILL);
	/*
	 * Threads we had seized report their exit to us, and the root's own exit is reported
	 * only after those: reap everything until the root is gone. A root that is the init of
	 * its pid namespace takes every process of it along when it dies.
	 */
	while (ctx->slots[0].pid) {
		pid_t pid = waitpid(-1, NULL, __WALL);

		if (pid < 0 || pid == (pid_t)ctx->slots[0].pid)
			break;
	}
}

static int write_pidfile(const char *path, pid_t pid)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret;

	if (fd < 0)
		return pr_errno(-errno, "cannot create pidfile %s", path);
	snprintf(buf, sizeof(buf), "%d", pid);
	ret = write_all(fd, buf, strlen(buf));
	close(fd);
	return ret;
}

static int wait_root(pid_t root)
{
	int status;

	while (waitpid(root, &status, 0) < 0)
		if (errno != EINTR)
			return pr_errno(-errno, "cannot wait for pid %d", root);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/*
 * With a core to spare (fewer processes than CPUs), the page data is checked on a thread of
 * crest's while the processes fill their memory, instead of by each process as it reads.
 * run() joins it before anything restored may run.
 */
static int start_verify(struct restore_ctx *ctx)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus > 0 && ctx->nr_live >= (size_t)cpus)
		return 0;
	return imgdir_verify_start(ctx->dir, &ctx->verify);
}

static int prepare(struct restore_ctx *ctx)
{
	pid_t *pids;
	size_t n = 0;
	int ret = read_tree(ctx);

	if (!ret)
		ret = ns_restore_read(ctx->dir, &ctx->ns);
	pidns_restore_begin(ctx->ns && ctx->ns->pid);
	/* In a new pid namespace every pid is free. */
	if (!ret && !(ctx->ns && ctx->ns->pid))
		ret = check_pids_free(ctx);
	if (ret)
		return ret;
	pids = xmalloc(ctx->nr_procs * sizeof(*pids));
	if (!pids)
		return -ENOMEM;
	/* A shared fd table has one fdinfo image, its owner's. */
	for (size_t i = 0; i < ctx->nr_procs; i++)
		if (!ctx->procs[i].pe->zombie && restore_table_owner(&ctx->procs[i]) == &ctx->procs[i])
			pids[n++] = ctx->procs[i].pe->pid;
	ret = files_restore_read(ctx->dir, pids, n, &ctx->files);
	free(pids);
	/* before plan_fds(): what the kinds make here lies below the service fds */
	if (!ret)
		ret = files_restore_prepare(ctx->files);
	if (!ret)
		ret = plan_shmem(ctx);
	/* Before plan_fds: its descriptors count among crest's own. */
	if (!ret)
		ret = start_verify(ctx);
	if (!ret)
		ret = plan_fds(ctx);
	if (!ret)
		ret = map_ctl(ctx);
	for (size_t i = 0; !ret && i < ctx->nr_procs; i++)
		if (!ctx->procs[i].pe->zombie)
			ctx->slots[restore_table_owner(&ctx->procs[i])->idx].table_users++;
	ctx->shell_pgid = getpgrp();
	return ret;
}

/*
 * A shell job whose root led its own group gets the terminal's foreground, before any of
 * its threads runs: a job that resumed first, in a read() of the terminal, would be stopped
 * by SIGTTIN as a background group.
 */
static void give_terminal(struct restore_ctx *ctx)
{
	PstreeEntry *root = ctx->procs[0].pe;
	pid_t host = ctx->slots[0].pid;

	if (!ctx->inv->shell_job || root->pgid != root->pid || !isatty(STDIN_FILENO))
		return;
	if (tcgetpgrp(STDIN_FILENO) == getpgrp()) {
		signal(SIGTTOU, SIG_IGN);
		if (tcsetpgrp(STDIN_FILENO, host))
			pr_warn("cannot give the terminal to process group %d: %s", host, strerror(errno));
	}
}

/*
 * The root is created in the namespaces the tree had of its own: uts and ipc by clone3 flags;
 * a time namespace must exist, with its offsets set, before its first process enters it, so
 * crest unshares one for its children just around this fork.
 */
static int fork_root(struct restore_ctx *ctx)
{
	int saved_timens, ret = ns_timens_prepare(ctx->ns, &saved_timens);

	if (ret)
		return ret;
	ctx->procs[0].clone_flags = ns_root_clone_flags(ctx->ns);
	ret = restore_fork(ctx, &ctx->procs[0]);
	ns_timens_done(saved_timens);
	return ret;
}

static int run(struct restore_ctx *ctx)
{
	uint64_t mark = now_ns(), deadline = mark + RESTORE_TIMEOUT_MS * 1000000ULL;
	int ret = fork_root(ctx), verified;

	files_restore_release(ctx->files);	/* the tree has its own copies now */
	if (!ret)
		ret = run_barriers(ctx, deadline, &mark);
	/* Joined on every path; nothing restored runs before it said the data is intact. */
	verified = imgdir_verify_finish(ctx->verify);
	ctx->verify = NULL;
	ret = ret ?: verified;
	if (!ret) {
		give_terminal(ctx);
		ret = finalize(ctx);
	}
	if (ret) {
		abort_restore(ctx);
		return ret;
	}
	stage_done(ctx, "finalize", &mark);
	ctx->stats.pages_bytes = pages_restored(ctx);
	stats_mark_thawed(&ctx->stats);
	return 0;
}

int crest_restore(const struct crest_opts *opts)
{
	struct restore_ctx ctx = { .opts = opts };
	pid_t root;
	int ret;

	stats_start(&ctx.stats);
	ret = imgdir_open_read(opts->images_dir, &ctx.dir);
	if (ret)
		return ret;
	ctx.inv = imgdir_inventory(ctx.dir);
	ret = prepare(&ctx);
	stats_add_stage(&ctx.stats, "read", now_ns() - ctx.stats.start_ns);
	if (!ret)
		ret = run(&ctx);
	else
		imgdir_verify_finish(ctx.verify);	/* its findings would only repeat */
	pidns_restore_done();
	if (ret)
		return ret;
	/* crest's view of the root: its pid inside is 1 when it is its pid namespace's init. */
	root = ctx.slots[0].pid;
	if (opts->display_stats)
		stats_print(&ctx.stats, "restore");
	if (opts->pidfile && write_pidfile(opts->pidfile, root)) {
		/* Whoever asked for the pidfile could not find the tree: take it back. */
		abort_restore(&ctx);
		return -EIO;
	}
	pr_info("restored %zu process(es), root pid %d", ctx.nr_procs, root);
	if (opts->restore_detached)
		return 0;
	/* Without -d crest exits as the root does, as CRIU does. */
	return wait_root(root);
}
