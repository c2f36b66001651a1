/*
 * crest run: starts a command so that crest can checkpoint it later with its namespaces: in
 * new pid, uts and ipc namespaces (a time namespace with --timens; no pid namespace with
 * --no-pidns), as the leader of a session of its own, its standard descriptors on files. It
 * prints the command's pid as crest sees it and returns at once; the command runs on
 * detached, adopted by init (or the nearest subreaper).
 *
 * In its pid namespace the command is pid 1, the init: the kernel drops signals it has no
 * handler for, and its exit kills every other process of the namespace. A restore makes the
 * namespace again with the same pids inside (ns/pidns.c).
 */
#define LOG_PREFIX "run: "
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/opts.h"
#include "util/log.h"
#include "util/util.h"

/* Sent by the child through a close-on-exec pipe when a step before exec fails. */
struct run_failure {
	int err;		/* -errno */
	char what[64];		/* the step */
};

/* The command's descriptors 0, 1 and 2, opened by crest so that errors name the file. */
static int open_stdio(const struct crest_opts *opts, int fds[3])
{
	const char *paths[3] = { opts->run_stdin, opts->run_stdout, opts->run_stderr };

	for (int i = 0; i < 3; i++) {
		const char *path = paths[i] ? paths[i] : "/dev/null";
		int flags = i ? O_WRONLY | O_CREAT | O_APPEND : O_RDONLY;

		fds[i] = open(path, flags | O_CLOEXEC, 0666);
		if (fds[i] < 0) {
			int err = pr_errno(-errno, "cannot open %s for the command's %s", path,
					   i == 0 ? "standard input" : i == 1 ? "standard output" : "standard error");

			while (i-- > 0)
				close(fds[i]);
			return err;
		}
	}
	return 0;
}

__attribute__((noreturn)) static void child_fail(int out, const char *what)
{
	struct run_failure f = { .err = -errno };

	snprintf(f.what, sizeof(f.what), "%s", what);
	write_all(out, &f, sizeof(f));
	_exit(127);
}

/* In the new namespaces: session, hostname, descriptors, then the command. */
__attribute__((noreturn)) static void run_child(const struct crest_opts *opts, int fds[3], int out)
{
	if (setsid() < 0)
		child_fail(out, "cannot start a session");
	if (opts->run_hostname && sethostname(opts->run_hostname, strlen(opts->run_hostname)))
		child_fail(out, "cannot set the hostname");
	/* Above 2 first: with crest's own 0-2 closed, a file may have got one of those numbers. */
	for (int i = 0; i < 3; i++)
		if (fds[i] < 3 && (fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			child_fail(out, "cannot set up the standard descriptors");
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(out, "cannot set up the standard descriptors");
	/* Nothing of crest (its log, say) may leak into the command; the pipe goes at exec. */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC))
		child_fail(out, "cannot close crest's descriptors");
	execvp(opts->args[0], opts->args);
	child_fail(out, "cannot execute");
}

/*
 * clone3 rather than fork: its flags make the namespaces together with the process, and
 * CLONE_NEWTIME puts the child into the new time namespace at once (unshare(2) would move
 * only later children).
 */
static pid_t clone_ns(const struct crest_opts *opts)
{
	struct clone_args ca = {
		.flags = CLONE_NEWUTS | CLONE_NEWIPC | (opts->run_timens ? CLONE_NEWTIME : 0) |
			 (opts->run_no_pidns ? 0 : CLONE_NEWPID),
		.exit_signal = SIGCHLD,
	};

	return syscall(SYS_clone3, &ca, sizeof(ca));
}

/* EOF on the pipe means the command was executed; else the child said what failed. */
static int wait_exec(const struct crest_opts *opts, pid_t pid, int in)
{
	struct run_failure f;
	ssize_t n;

	while ((n = read(in, &f, sizeof(f))) < 0 && errno == EINTR)
		;
	if (n == 0)
		return 0;
	waitpid(pid, NULL, 0);
	if (n != sizeof(f))
		return pr_errno(-EIO, "%s: the command died before it was executed", opts->args[0]);
	return pr_errno(f.err, "%s: %s", opts->args[0], f.what);
}

static int check_args(const struct crest_opts *opts)
{
	if (opts->nr_args < 1) {
		pr_err("run needs a command: crest run [options] -- CMD [ARGS...]");
		return -EINVAL;
	}
	if (opts->run_hostname && strlen(opts->run_hostname) > 64) {
		pr_err("--hostname: '%s' is longer than 64 bytes", opts->run_hostname);
		return -EINVAL;
	}
	return 0;
}

int cmd_run(const struct crest_opts *opts)
{
	int fds[3], pfd[2], err = check_args(opts);
	pid_t pid;

	if (!err)
		err = open_stdio(opts, fds);
	if (err)
		return err;
	if (pipe2(pfd, O_CLOEXEC)) {
		err = pr_errno(-errno, "cannot make a pipe");
		goto out_close_stdio;
	}
	pid = clone_ns(opts);
	if (pid == 0) {
		close(pfd[0]);
		run_child(opts, fds, pfd[1]);
	}
	close(pfd[1]);
	if (pid < 0)
		err = pr_errno(-errno, "cannot create a process in new namespaces (clone3)");
	else
		err = wait_exec(opts, pid, pfd[0]);
	close(pfd[0]);
	if (!err) {
		printf("%d\n", pid);
		fflush(stdout);
	}
out_close_stdio:
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	return err;
}
