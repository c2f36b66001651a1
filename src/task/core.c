/*
 * Per-process state for core-<pid>.img: name, signal dispositions, personality, umask, cwd
 * and exit signal.
 */
#define LOG_PREFIX "task: "

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "task/task.h"
#include "infect/infect.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

/* Signals the kernel knows (_NSIG): rt_sigaction() takes 1..64, 32 and 33 included. */
#define KERNEL_NSIG	64
/* /proc/PID/stat: exit_signal is field 38; fields counted after "pid (comm) " start at 3. */
#define STAT_EXIT_SIGNAL_FIELD	38

/*
 * struct sigaction as rt_sigaction() exchanges it with the kernel (not glibc's layout):
 * x86_64 and the generic layout of arm64 and riscv agree on it.
 */
struct kernel_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/* Reads /proc/PID/NAME into a string, without its trailing newline. */
static char *proc_read(pid_t pid, const char *name)
{
	char path[64], *buf, *nl;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf) {
		pr_perror("pid %d: cannot read %s", pid, path);
		return NULL;
	}
	nl = strrchr(buf, '\n');
	if (nl && !nl[1])
		*nl = '\0';
	return buf;
}

static int add_sigaction(TaskCore *tc, int sig, const struct kernel_sigaction *ka)
{
	SigactionEntry *e;

	e = xmalloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	sigaction_entry__init(e);
	e->sig = sig;
	e->handler = ka->handler;
	e->flags = ka->flags;
	e->restorer = ka->restorer;
	e->mask = ka->mask;
	tc->sigactions[tc->n_sigactions++] = e;
	return 0;
}

/* Keeps the dispositions that differ from the default (SIG_DFL, no flags, empty mask). */
static int collect_sigactions(TaskCore *tc, const struct kernel_sigaction *acts, const bool *valid)
{
	int sig, ret;

	tc->sigactions = xzalloc(KERNEL_NSIG * sizeof(*tc->sigactions));
	if (!tc->sigactions)
		return -ENOMEM;
	for (sig = 1; sig <= KERNEL_NSIG; sig++) {
		const struct kernel_sigaction *ka = &acts[sig - 1];

		if (!valid[sig - 1] || (!ka->handler && !ka->flags && !ka->mask))
			continue;
		ret = add_sigaction(tc, sig, ka);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Signal dispositions are shown to the process alone: query each with a remote
 * rt_sigaction(sig, NULL, old), every answer into its own slot of one scratch area, then
 * read them all back at once.
 */
static int dump_sigactions(struct infect_ctl *ctl, pid_t pid, TaskCore *tc)
{
	struct kernel_sigaction acts[KERNEL_NSIG];
	bool valid[KERNEL_NSIG] = { false };
	uint64_t base;
	int sig, ret;

	ret = infect_scratch(ctl, sizeof(acts), &base);
	if (ret)
		return ret;
	for (sig = 1; sig <= KERNEL_NSIG; sig++) {
		long args[6] = { sig, 0, (long)(base + (sig - 1) * sizeof(acts[0])), 8 }, r;

		/* Their disposition is fixed: SIG_DFL, always. */
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		ret = infect_syscall(ctl, SYS_rt_sigaction, args, &r);
		if (ret)
			return ret;
		if (r == -EINVAL)
			continue;	/* a signal this kernel does not have: nothing to lose */
		if (r) {
			pr_err("pid %d: rt_sigaction(%d) failed: %s", pid, sig, strerror((int)-r));
			return (int)r;
		}
		valid[sig - 1] = true;
	}
	ret = infect_read(ctl, base, acts, sizeof(acts));
	if (ret)
		return ret;
	return collect_sigactions(tc, acts, valid);
}

static int dump_personality(pid_t pid, TaskCore *tc)
{
	_cleanup_free_ char *buf = proc_read(pid, "personality");

	if (!buf)
		return -errno;
	tc->personality = (uint32_t)strtoul(buf, NULL, 16);
	tc->has_personality = true;
	return 0;
}

/* The "Umask:" line of /proc/PID/status (kernel 4.7+), octal. */
static int dump_umask(pid_t pid, TaskCore *tc)
{
	_cleanup_free_ char *buf = proc_read(pid, "status");
	const char *p;

	if (!buf)
		return -errno;
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, "Umask:", 6)) {
			tc->umask = (uint32_t)strtoul(p + 6, NULL, 8);
			tc->has_umask = true;
			return 0;
		}
	}
	pr_err("pid %d: no Umask line in /proc/%d/status", pid, pid);
	return -ENOENT;
}

static int dump_cwd(pid_t pid, TaskCore *tc)
{
	char path[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
	n = readlink(path, buf, sizeof(buf));
	if (n < 0 || (size_t)n == sizeof(buf)) {
		int ret = n < 0 ? -errno : -ENAMETOOLONG;

		return pr_errno(ret, "pid %d: cannot read its working directory (%s)", pid, path);
	}
	buf[n] = '\0';
	if (n > 10 && !strcmp(buf + n - 10, " (deleted)"))
		pr_warn("pid %d: its working directory %s is deleted", pid, buf);
	tc->cwd = xstrdup(buf);
	return tc->cwd ? 0 : -ENOMEM;
}

static int dump_exit_signal(pid_t pid, TaskCore *tc)
{
	_cleanup_free_ char *buf = proc_read(pid, "stat");
	char *p, *save = NULL, *tok;
	int field = 3;

	if (!buf)
		return -errno;
	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	for (tok = p ? strtok_r(p + 1, " ", &save) : NULL; tok; tok = strtok_r(NULL, " ", &save)) {
		if (field++ == STAT_EXIT_SIGNAL_FIELD) {
			tc->exit_signal = (uint32_t)strtoul(tok, NULL, 10);
			tc->has_exit_signal = true;
			return 0;
		}
	}
	pr_err("pid %d: /proc/%d/stat has no exit_signal field", pid, pid);
	return -EINVAL;
}

int task_dump_core(struct infect_ctl *ctl, pid_t pid, TaskCore *tc)
{
	int ret;

	task_core__init(tc);
	tc->pid = pid;
	tc->comm = proc_read(pid, "comm");
	ret = tc->comm ? 0 : -errno;
	if (!ret)
		ret = dump_sigactions(ctl, pid, tc);
	if (!ret)
		ret = dump_personality(pid, tc);
	if (!ret)
		ret = dump_umask(pid, tc);
	if (!ret)
		ret = dump_cwd(pid, tc);
	if (!ret)
		ret = dump_exit_signal(pid, tc);
	if (!ret)
		ret = task_dump_pending(pid, true, &tc->shared_siginfo, &tc->n_shared_siginfo);
	if (!ret)
		ret = task_dump_extras(ctl, pid, tc);
	if (ret)
		task_free_core(tc);
	return ret;
}

void task_free_core(TaskCore *tc)
{
	size_t i;

	free(tc->comm);
	for (i = 0; i < tc->n_sigactions; i++)
		free(tc->sigactions[i]);
	free(tc->sigactions);
	free(tc->cwd);
	task_free_pending(tc->shared_siginfo, tc->n_shared_siginfo);
	task_free_extras(tc->extras, tc->n_extras);
	task_core__init(tc);
}
