/*
 * What each process being restored does while it is still crest: take its pid, session and
 * group, fork its children, create or take its files and shared memory, premap its memory,
 * install its fd table, and jump into the restorer. Failures are reported through the shared
 * control area; the controller then kills every process it created.
 */
#define LOG_PREFIX "restore: "
#include "core/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch/arch.h"
#include "cli/opts.h"
#include "files/files.h"
#include "image/img.h"
#include "ns/ns.h"
#include "ns/pidns.h"
#include "task/task.h"
#include "util/futex.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

__attribute__((noreturn)) void restore_fail(struct restore_ctx *ctx, int err)
{
	int expected = 0;

	if (__atomic_compare_exchange_n(&ctx->ctl->error, &expected, err ? err : -EIO, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		ctx->ctl->error_pid = getpid();
	futex_wake_all(&ctx->ctl->stage_arrived);
	_exit(1);
}

/* Arrives at the barrier ending stage and sleeps until the controller opens the next. */
static void stage_barrier(struct restore_ctx *ctx, enum restore_stage stage)
{
	__atomic_add_fetch(&ctx->ctl->stage_arrived, 1, __ATOMIC_SEQ_CST);
	futex_wake_all(&ctx->ctl->stage_arrived);
	for (;;) {
		uint32_t cur = atomic_load32(&ctx->ctl->stage);

		if (atomic_load32(&ctx->ctl->abort))
			_exit(1);
		if (cur > stage)
			return;
		futex_wait_ms(&ctx->ctl->stage, cur, 200);
	}
}

int restore_fork(struct restore_ctx *ctx, struct rproc *rp)
{
	pid_t tid = rp->pe->pid;
	struct clone_args ca = {
		.flags = rp->clone_flags | rp->share_flags,
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)&tid,
		.set_tid_size = 1,
	};
	long pid;

	if (rp->core && rp->core->has_exit_signal)
		ca.exit_signal = rp->core->exit_signal;
	/* clone3 refuses an exit signal with CLONE_PARENT: the child gets its creator's. */
	if (rp->share_flags & CLONE_PARENT)
		ca.exit_signal = 0;
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		if (errno == EEXIST)
			pr_err("pid %d is already in use: cannot restore a process with it", tid);
		else
			pr_perror("pid %d: clone3 with set_tid failed", tid);
		return -errno;
	}
	if (pid == 0) {
		/* Namespaces it made are filled in before anything else runs in them. */
		int ret = rp->clone_flags ? ns_restore_root(ctx->dir, ctx->ns) : 0;

		if (ret)
			restore_fail(ctx, ret);
		restore_task(ctx, rp);
	}
	return 0;
}

static bool in_tree(const struct restore_ctx *ctx, pid_t pid)
{
	for (size_t i = 0; i < ctx->nr_procs; i++)
		if ((pid_t)ctx->procs[i].pe->pid == pid)
			return true;
	return false;
}

/* Sessions and groups: a process is in its parent's unless it made its own. */
static int setup_session(struct restore_ctx *ctx, struct rproc *rp)
{
	PstreeEntry *pe = rp->pe;

	if (pe->sid == pe->pid && setsid() < 0)
		return pr_errno(-errno, "pid %d: setsid failed", pe->pid);
	if (pe->pgid == pe->pid) {
		if (getpgid(0) != (pid_t)pe->pid && setpgid(0, 0))
			return pr_errno(-errno, "pid %d: cannot lead its process group", pe->pid);
	} else if (getpgid(0) != (pid_t)pe->pgid) {
		pid_t want = pe->pgid;

		/* A group whose leader is outside the tree is the shell's (--shell-job). */
		if (ctx->inv->shell_job && !in_tree(ctx, pe->pgid))
			want = ctx->shell_pgid;
		if (setpgid(0, want))
			return pr_errno(-errno, "pid %d: cannot join process group %d", pe->pid, want);
	}
	if (getsid(0) != (pid_t)pe->sid && !ctx->inv->shell_job) {
		pr_err("pid %d: ended in session %d instead of %d: this session layout is not supported",
		       pe->pid, getsid(0), pe->sid);
		return -EINVAL;
	}
	return 0;
}

/* A zombie comes back as a process that exits the way the original did. */
__attribute__((noreturn)) static void become_zombie(struct rproc *rp)
{
	int status = rp->pe->exit_status;

	if (rp->pe->comm)
		prctl(PR_SET_NAME, rp->pe->comm, 0, 0, 0);
	if (WIFSIGNALED(status)) {
		struct rlimit no_core = { 0, 0 };
		sigset_t set;

		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, WTERMSIG(status));
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

static int svc_fd_of_shmem(struct restore_ctx *ctx, size_t idx)
{
	return ctx->svc_base + files_restore_nr_entries(ctx->files) + idx;
}

/* Moves fd to number want (a service fd), closing the original. */
static int to_svc(int fd, int want)
{
	if (fd == want)
		return 0;
	if (dup3(fd, want, O_CLOEXEC) < 0) {
		int err = -errno;

		close(fd);
		return pr_errno(err, "cannot move descriptor to %d", want);
	}
	close(fd);
	return 0;
}

/* For the kinds' open: the service fd of an entry this process created already. */
static int svc_fd_of_entry(void *arg, uint32_t id)
{
	struct restore_ctx *ctx = arg;
	int svc = ctx->svc_base + id - 1;

	if (id && id <= files_restore_nr_entries(ctx->files) && fcntl(svc, F_GETFD) >= 0)
		return svc;
	pr_err("pid %d: file %u is not created yet", getpid(), id);
	return -1;
}

static int open_owned(struct restore_ctx *ctx, struct rproc *rp)
{
	pid_t pid = rp->pe->pid;

	for (size_t i = 0; i < files_restore_nr_entries(ctx->files); i++) {
		uint32_t id = files_restore_entry_id(ctx->files, i);
		int fd, ret;

		if (files_restore_owner(ctx->files, id) != pid)
			continue;
		fd = files_restore_open(ctx->files, id, pid, ctx->opts, svc_fd_of_entry, ctx);
		if (fd < 0)
			return fd;
		ret = to_svc(fd, ctx->svc_base + id - 1);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < ctx->nr_shmem; i++) {
		int fd, ret;

		if (ctx->shmem[i].owner != pid)
			continue;
		if (ctx->shmem[i].file_id)	/* created just above, by its kind */
			ret = mem_shmem_adopt(ctx->dir, ctx->shmem[i].vma,
					      ctx->svc_base + ctx->shmem[i].file_id - 1, &fd);
		else
			ret = mem_shmem_create(ctx->dir, ctx->shmem[i].vma, &fd);
		if (!ret)
			ret = to_svc(fd, svc_fd_of_shmem(ctx, i));
		if (ret)
			return ret;
	}
	return 0;
}

/* Takes a copy of service fd `fd` of process owner. */
static int take_from(pid_t self, pid_t owner, int fd)
{
	int pidfd = sys_pidfd_open(owner, 0), got, ret;

	if (pidfd < 0)
		return pr_errno(-errno, "pid %d: cannot open pidfd of %d", self, owner);
	got = sys_pidfd_getfd(pidfd, fd, 0);
	ret = got < 0 ? pr_errno(-errno, "pid %d: cannot take fd %d of pid %d", self, fd, owner) : 0;
	close(pidfd);
	return ret ? ret : to_svc(got, fd);
}

static bool holds_fd(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int take_shared(struct restore_ctx *ctx, struct rproc *rp)
{
	pid_t pid = rp->pe->pid;
	FdEntry **fds = NULL;
	size_t nr = 0;
	int ret = 0;

	/* In a shared fd table, its owner takes the descriptions for all. */
	if (restore_table_owner(rp) == rp)
		ret = files_restore_fds(ctx->files, pid, &fds, &nr);

	for (size_t i = 0; !ret && i < nr; i++) {
		int svc = ctx->svc_base + fds[i]->file_id - 1;
		pid_t owner = files_restore_owner(ctx->files, fds[i]->file_id);

		if (owner != pid && !holds_fd(svc))
			ret = take_from(pid, owner, svc);
	}
	for (size_t v = 0; !ret && v < rp->map.nr_vmas; v++) {
		const VmaEntry *vma = rp->map.vmas[v];

		for (size_t s = 0; vma->kind == VMA_KIND__VMA_SHMEM && s < ctx->nr_shmem; s++) {
			int svc = svc_fd_of_shmem(ctx, s);

			if (ctx->shmem[s].ino == vma->ino && !holds_fd(svc))
				ret = take_from(pid, ctx->shmem[s].owner, svc);
		}
	}
	return ret;
}

static int shmem_fd_of(void *arg, uint64_t ino)
{
	struct restore_ctx *ctx = arg;

	for (size_t s = 0; s < ctx->nr_shmem; s++)
		if (ctx->shmem[s].ino == ino)
			return svc_fd_of_shmem(ctx, s);
	pr_err("shared memory object %" PRIu64 " is not in the image", ino);
	return -1;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every descriptor but keep[] (sorted), with as few close_range calls as gaps. */
static void close_all_but(int *keep, size_t nr)
{
	unsigned int from = 0;

	qsort(keep, nr, sizeof(*keep), cmp_int);
	for (size_t i = 0; i < nr; i++) {
		if ((unsigned int)keep[i] > from)
			syscall(SYS_close_range, from, keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

/* Puts every fd at its number with its FD_CLOEXEC; nothing else stays open but the log. */
static int install_fds(struct restore_ctx *ctx, struct rproc *rp, int log_fd)
{
	FdEntry **fds;
	size_t nr;
	int *keep, ret = files_restore_fds(ctx->files, rp->pe->pid, &fds, &nr);

	if (ret)
		return ret;
	keep = xmalloc((nr + 1) * sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++) {
		int svc = ctx->svc_base + fds[i]->file_id - 1;

		if (dup3(svc, fds[i]->fd, fds[i]->cloexec ? O_CLOEXEC : 0) < 0) {
			ret = pr_errno(-errno, "pid %d: cannot install fd %u", rp->pe->pid, fds[i]->fd);
			free(keep);
			return ret;
		}
		keep[i] = fds[i]->fd;
	}
	keep[nr] = log_fd;
	close_all_but(keep, nr + 1);
	free(keep);
	return 0;
}

/*
 * cwd, umask and personality: process-wide, set by the process itself. cwd and umask live in
 * the fs_struct, set once by the first process sharing it (CLONE_FS).
 */
static int restore_cwd_umask(struct rproc *rp)
{
	if (rp->core->has_personality && personality(rp->core->personality) < 0)
		return pr_errno(-errno, "pid %d: cannot set personality %#x", rp->pe->pid,
				rp->core->personality);
	if (rp->share_flags & CLONE_FS)
		return 0;
	if (rp->core->cwd && chdir(rp->core->cwd))
		return pr_errno(-errno, "pid %d: cannot change directory to %s", rp->pe->pid, rp->core->cwd);
	if (rp->core->has_umask)
		umask(rp->core->umask);
	return 0;
}

struct rproc *restore_table_owner(struct rproc *rp)
{
	while (rp->share_flags & CLONE_FILES)
		rp = rp->creator;
	return rp;
}

/* Waits until the owner of rp's shared fd table has installed it (or the restore aborts). */
static void wait_table_ready(struct restore_ctx *ctx, struct rproc *rp)
{
	uint32_t *ready = &ctx->slots[restore_table_owner(rp)->idx].table_ready;

	while (!atomic_load32(ready)) {
		if (atomic_load32(&ctx->ctl->abort))
			_exit(1);
		futex_wait_ms(ready, 0, 200);
	}
}

/*
 * The owner of a table installs it; the processes sharing it wait for that before they do
 * anything in it (their exe descriptor, below), since installing closes every gap.
 */
static int restore_fdtable(struct restore_ctx *ctx, struct rproc *rp)
{
	struct rst_slot *slot = &ctx->slots[rp->idx];
	int ret;

	if (restore_table_owner(rp) != rp) {
		wait_table_ready(ctx, rp);
		return 0;
	}
	ret = install_fds(ctx, rp, log_fd());
	if (!ret)
		ret = files_restore_late(ctx->files, rp->pe->pid, ctx->opts);
	if (!ret) {
		__atomic_store_n(&slot->table_ready, 1, __ATOMIC_SEQ_CST);
		futex_wake_all(&slot->table_ready);
	}
	return ret;
}

void restore_leave_table(struct restore_ctx *ctx, struct rproc *rp)
{
	uint32_t *users = &ctx->slots[restore_table_owner(rp)->idx].table_users;

	if (__atomic_sub_fetch(users, 1, __ATOMIC_SEQ_CST) == 0)
		close(log_fd());
}

/* crest raised its own soft RLIMIT_NOFILE to hold the service fds; the tree gets it back. */
static void restore_nofile(struct restore_ctx *ctx)
{
	struct rlimit lim;

	if (!getrlimit(RLIMIT_NOFILE, &lim) && lim.rlim_cur != ctx->nofile_soft) {
		lim.rlim_cur = ctx->nofile_soft;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

__attribute__((noreturn)) void restore_task(struct restore_ctx *ctx, struct rproc *rp)
{
	struct mem_premap pm;
	struct rst_args *args;
	pid_t host = pidns_host_self();	/* the controller's view of this process */
	int ret;

	if (host < 0)
		restore_fail(ctx, pr_errno(host, "pid %d: cannot learn its pid outside its pid namespace", getpid()));
	ctx->slots[rp->idx].pid = host;
	ret = setup_session(ctx, rp);
	if (!ret)	/* before the children: they inherit a controlling terminal */
		ret = files_restore_session(ctx->files, rp->pe->pid);
	for (size_t i = 0; !ret && i < rp->nr_children; i++)
		ret = restore_fork(ctx, rp->children[i]);
	if (ret)
		restore_fail(ctx, ret);
	stage_barrier(ctx, RS_CREATE);
	if (rp->pe->zombie)
		become_zombie(rp);
	ret = open_owned(ctx, rp);
	if (ret)
		restore_fail(ctx, ret);
	stage_barrier(ctx, RS_OWN);
	ret = take_shared(ctx, rp);
	if (!ret)
		ret = mem_premap(ctx->dir, rp->pe->pid, &rp->map, !ctx->opts->no_thp, shmem_fd_of,
				 ctx, &pm);
	if (!ret) {
		__atomic_store_n(&ctx->slots[rp->idx].pages_bytes, pm.bytes_read, __ATOMIC_RELEASE);
		ret = restore_prepare_restorer(ctx, rp, &pm, &args);
	}
	if (ret)
		restore_fail(ctx, ret);
	stage_barrier(ctx, RS_TAKE);
	/* Every process has attached its SysV segments: the root may now remove the marked ones. */
	ret = rp->clone_flags ? ns_restore_late(ctx->dir, ctx->ns) : 0;
	if (!ret)
		ret = restore_cwd_umask(rp);
	if (!ret)
		ret = restore_fdtable(ctx, rp);
	if (ret)
		restore_fail(ctx, ret);
	restore_nofile(ctx);
	/* Last, so that limits and the like restored here bind nothing crest still does. */
	ret = task_restore_self(rp->pe->pid, rp->core);
	if (ret)
		restore_fail(ctx, ret);
	restore_jump(ctx, rp, args);
}
