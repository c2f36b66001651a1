/*
 * "pidfd": a descriptor referring to a process (pidfd_open(2), clone(CLONE_PIDFD)). fdinfo
 * "Pid:" names the process in crest's pid namespace (0: outside it), or is -1 once the process
 * was reaped; 6.18 still shows the link as "anon_inode:[pidfd]" on pidfs. The status flags carry
 * PIDFD_NONBLOCK (O_NONBLOCK) and PIDFD_THREAD (O_EXCL, 6.9).
 *
 * Restore: a live process is one of the tree, restored with the same pid before any
 * descriptor is created, so pidfd_open(2) on that pid gives a pidfd of the same process.
 * A pidfd of a process outside the tree is refused: nothing says that pid would name the same
 * process at restore. A reaped process comes back as a pidfd of a helper child that exits the
 * way the original did (the exit status is what PIDFD_GET_INFO shows since 6.15) and is reaped
 * at once.
 */
#define LOG_PREFIX "files/pidfd: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/opts.h"
#include "pidfd.pb-c.h"
#include "util/kernel-compat.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

/* The ancestry walk gives up after this many steps, should parents change under it. */
#define MAX_DEPTH 4096

static bool pidfd_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:[pidfd]");
}

/* The number after KEY ("\nName:") in /proc/PID/<file> text; -ENOENT when absent. */
static int field_int(const char *text, const char *key, int *ret)
{
	const char *p = fdinfo_value(text, key);
	char *end;

	if (!p)
		return -ENOENT;
	*ret = strtol(p, &end, 10);
	return end == p ? -EINVAL : 0;
}

/* The parent of pid (field 4 of /proc/PID/stat), or -errno. */
static pid_t parent_of(pid_t pid)
{
	char path[64], *p;
	_cleanup_free_ char *buf = NULL;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -EINVAL;
	return ppid;
}

/* True when pid is the dumped root or one of its descendants: the tree crest dumps. */
static bool in_tree(pid_t root, pid_t pid)
{
	for (int depth = 0; pid > 0 && depth < MAX_DEPTH; depth++) {
		if (pid == root)
			return true;
		pid = parent_of(pid);
	}
	return false;
}

/* The thread group of tid (/proc/TID/status "Tgid:"), or -errno. */
static pid_t tgid_of(pid_t tid)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	int tgid, err;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	err = field_int(buf, "\nTgid:", &tgid);
	return err ? err : tgid;
}

/*
 * A live target must be a process of the tree (a thread counts by its thread group: the
 * parent of a thread is that of its group). A thread pidfd (PIDFD_THREAD) must name a thread
 * group leader, since the other threads are only created after the descriptors at restore.
 */
static int check_live(const struct fd_dump_arg *a, pid_t pid)
{
	pid_t tgid = tgid_of(pid);

	if (!in_tree(a->opts->pid, tgid > 0 ? tgid : pid)) {
		pr_err("pid %d fd %d: pidfd of process %d, which is outside the dumped tree", a->pid,
		       a->fd, pid);
		return -EOPNOTSUPP;
	}
	if ((a->flags & PIDFD_THREAD) && tgid != pid) {
		pr_err("pid %d fd %d: pidfd of thread %d, which is not a thread group leader: not supported",
		       a->pid, a->fd, pid);
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * A reaped process: the wait status it ended with, when the kernel keeps it (PIDFD_INFO_EXIT,
 * 6.15). Older kernels have no way to show it to the target either, so there is nothing to
 * lose. A core dump cannot be replayed without writing one: refused.
 */
static int dead_status(const struct fd_dump_arg *a, PidfdFile *pf)
{
	struct pidfd_info info = { .mask = PIDFD_INFO_EXIT };

	if (a->lfd < 0 || ioctl(a->lfd, PIDFD_GET_INFO, &info) || !(info.mask & PIDFD_INFO_EXIT))
		return 0;
	if (WIFSIGNALED(info.exit_code) && WCOREDUMP(info.exit_code)) {
		pr_err("pid %d fd %d: pidfd of a process that dumped core (signal %d): cannot be recreated",
		       a->pid, a->fd, WTERMSIG(info.exit_code));
		return -EOPNOTSUPP;
	}
	pf->has_exit_status = true;
	pf->exit_status = info.exit_code;
	return 0;
}

static int pidfd_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	PidfdFile *pf;
	int pid, err;

	if (field_int(a->fdinfo, "\nPid:", &pid)) {
		pr_err("pid %d fd %d: pidfd without a Pid line in fdinfo", a->pid, a->fd);
		return -EINVAL;
	}
	if (!pid) {
		pr_err("pid %d fd %d: pidfd of a process outside crest's pid namespace", a->pid, a->fd);
		return -EOPNOTSUPP;
	}
	pf = xmalloc(sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pidfd_file__init(pf);
	pf->flags = a->flags;
	pf->pid = pid;
	err = pid > 0 ? check_live(a, pid) : dead_status(a, pf);
	if (pid > 0)
		pf->pid = pidns_view(pid);	/* fdinfo names it in crest's namespace */
	if (err) {
		free(pf);
		return err;
	}
	*ret = &pf->base;
	return 0;
}

/* A status a process can end with: an exit, or death by a signal whose default is to kill. */
static bool valid_status(int status)
{
	int sig = WTERMSIG(status);

	if (WIFEXITED(status))
		return !(status & ~0xff00);
	if (!WIFSIGNALED(status) || (status & ~0x7f) || sig >= 65)
		return false;
	return sig != SIGCHLD && sig != SIGCONT && sig != SIGURG && sig != SIGWINCH &&
	       sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU;
}

/* The helper's end: exit, or die by the signal, as the original did, without a core dump. */
__attribute__((noreturn)) static void die_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	sigset_t all;

	if (WIFSIGNALED(status)) {
		/* A process that is not dumpable never dumps core, even to a core_pattern pipe. */
		prctl(PR_SET_DUMPABLE, 0);
		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(status), SIG_DFL);
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		kill(getpid(), WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

/* A helper process for a pidfd of a reaped process; it ends once release is closed. */
struct helper {
	pid_t pid;
	int release;
};

/*
 * exit_signal 0: the helper's end sends no SIGCHLD, which would otherwise stay pending in the
 * process being restored (and needs __WALL to be waited for).
 */
static int helper_start(const struct fd_open_arg *a, int status, struct helper *h)
{
	struct clone_args ca = { .exit_signal = 0 };
	int p[2], err;
	long pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return pr_errno(-errno, "pid %d: cannot create a pipe for a pidfd helper", a->pid);
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		die_like(status);
	}
	close(p[0]);
	if (pid < 0) {
		err = pr_errno(-errno, "pid %d: cannot create a helper process for a pidfd", a->pid);
		close(p[1]);
		return err;
	}
	h->pid = pid;
	h->release = p[1];
	return 0;
}

/* Lets the helper end and reaps it: from then on a pidfd of it refers to a reaped process. */
static int helper_finish(const struct fd_open_arg *a, struct helper *h)
{
	close(h->release);
	while (waitpid(h->pid, NULL, __WALL) < 0)
		if (errno != EINTR)
			return pr_errno(-errno, "pid %d: cannot reap pidfd helper %d", a->pid, h->pid);
	return 0;
}

static int pidfd_open_flags(const struct fd_open_arg *a, pid_t pid, uint32_t flags)
{
	int fd = sys_pidfd_open(pid, flags & (PIDFD_NONBLOCK | PIDFD_THREAD));

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open a pidfd of process %d", a->pid, pid);
	return fd;
}

/* A pidfd of a reaped process: opened on a helper while it lives, kept after it is reaped. */
static int open_dead(const struct fd_open_arg *a, const PidfdFile *pf)
{
	int status = pf->has_exit_status ? pf->exit_status : 0, fd, err;
	struct helper h = { .pid = 0, .release = -1 };

	if (!valid_status(status)) {
		pr_err("pid %d: pidfd %u: %#x is not a status a process can end with", a->pid, a->id,
		       status);
		return -EINVAL;
	}
	err = helper_start(a, status, &h);
	if (err)
		return err;
	fd = pidfd_open_flags(a, h.pid, pf->flags);
	err = helper_finish(a, &h);
	if (err && fd >= 0) {
		close(fd);
		return err;
	}
	return fd;
}

static int pidfd_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const PidfdFile *pf = (const PidfdFile *)rec;
	int fd = pf->pid > 0 ? pidfd_open_flags(a, pf->pid, pf->flags) : open_dead(a, pf), err;

	if (fd < 0)
		return fd;
	/* pidfd_open takes only the two flags; the rest of the status flags (O_ASYNC) follow. */
	if (fcntl(fd, F_SETFL, pf->flags & ~O_ACCMODE) < 0) {
		err = pr_errno(-errno, "pid %d: cannot set pidfd flags %#o", a->pid, pf->flags);
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_pidfd = {
	.name = "pidfd",
	.desc = &pidfd_file__descriptor,
	.match = pidfd_match,
	.dump = pidfd_dump,
	.open = pidfd_open,
};
