/*
 * Reading a namespace from inside. The hostname of a uts namespace is shown by the kernel only
 * to processes in it (uname(2) answers for the caller's namespace), so a forked child of crest
 * joins the target's with setns(2) and sends what it read back through a pipe. crest itself
 * never moves. (The objects of an ipc namespace are read by a thread instead: ipc.c.)
 */
#define LOG_PREFIX "ns: "
#include "ns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

static int peek_fill(int pidfd, int flags, struct ns_peek *peek)
{
	if (setns(pidfd, flags)) {
		snprintf(peek->what, sizeof(peek->what), "cannot join its namespaces");
		return -errno;
	}
	if ((flags & CLONE_NEWUTS) && uname(&peek->uts)) {
		snprintf(peek->what, sizeof(peek->what), "cannot read its uts names");
		return -errno;
	}
	return 0;
}

/* The child: joins, reads, reports; the result always goes back, failures included. */
__attribute__((noreturn)) static void peek_child(int pidfd, int flags, int out)
{
	struct ns_peek peek = { 0 };

	peek.err = peek_fill(pidfd, flags, &peek);
	_exit(write_all(out, &peek, sizeof(peek)) ? 1 : 0);
}

/* Collects the child's report; a child that died before writing it is an error too. */
static int peek_collect(pid_t pid, pid_t child, int in, struct ns_peek *ret)
{
	int err = read_all(in, ret, sizeof(*ret)), status;

	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (err)
		return pr_errno(err == -ENODATA ? -EIO : err,
				"pid %d: the helper that reads its namespaces gave no answer", pid);
	if (ret->err)
		return pr_errno(ret->err, "pid %d: %s", pid, ret->what);
	return 0;
}

int ns_peek(pid_t pid, int flags, struct ns_peek *ret)
{
	int pfd[2], pidfd, err;
	pid_t child;

	pidfd = sys_pidfd_open(pid, 0);
	if (pidfd < 0)
		return pr_errno(-errno, "pid %d: cannot open a pidfd", pid);
	if (pipe2(pfd, O_CLOEXEC)) {
		err = pr_errno(-errno, "pid %d: cannot make a pipe to read its namespaces", pid);
		goto out_close_pidfd;
	}
	child = fork();
	if (child == 0) {
		close(pfd[0]);
		peek_child(pidfd, flags, pfd[1]);
	}
	close(pfd[1]);
	if (child < 0)
		err = pr_errno(-errno, "pid %d: cannot fork a helper to read its namespaces", pid);
	else
		err = peek_collect(pid, child, pfd[0], ret);
	close(pfd[0]);
out_close_pidfd:
	close(pidfd);
	return err;
}
