/*
 * Runs build/crest and reads what --display-stats prints:
 *   "  NAME   VALUE ms"  for each stage, then "frozen" (dump: first task stopped until the last
 *                      resumed or killed) and "total";
 * other lines ("pages ... MiB", messages) are ignored. Stage names other than "frozen" and
 * "total" are not relied on: they are printed as crest names them.
 * The time is taken around the crest process itself: from just before fork until its exit is
 * seen through a pidfd (poll), so exec and crest's own start-up are inside the figure.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define OUT_MAX (64 * 1024)

static pid_t crest_pid;	/* for the signal handler */

void crest_kill_current(void)
{
	if (crest_pid > 0)
		kill(crest_pid, SIGKILL);
}

static void parse_line(char *line, struct crest_result *res)
{
	char name[32];
	double v;
	char unit[8];

	if (sscanf(line, " %31s %lf %7s", name, &v, unit) != 3 || strcmp(unit, "ms"))
		return;
	if (!strcmp(name, "total"))
		res->total_ms = v;
	else if (!strcmp(name, "frozen"))
		res->frozen_ms = v;
	else if (res->nr_stages < MAX_STAGES) {
		snprintf(res->stages[res->nr_stages].name, sizeof(res->stages[0].name), "%.23s", name);
		res->stages[res->nr_stages++].ms = v;
	}
}

static void parse_output(char *out, struct crest_result *res)
{
	char *save = NULL;

	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != ' ') {	/* stats lines are indented; anything else is a message */
			snprintf(res->last_line, sizeof(res->last_line), "%s", line);
			continue;
		}
		parse_line(line, res);
	}
}

/* The child side: stdout and stderr into the pipe, then exec crest. */
static void __attribute__((noreturn)) exec_crest(char *const argv[], int out_fd)
{
	dup2(out_fd, 1);
	dup2(out_fd, 2);
	close(out_fd);
	execv(opts.crest, argv);
	fprintf(stderr, "exec %s: %s\n", opts.crest, strerror(errno));
	_exit(127);
}

/* Reads crest's output until crest exits (its pidfd turns readable) or time runs out. */
static int collect(int pidfd, int out_fd, char *out, size_t *len, double deadline)
{
	struct pollfd pfd[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = out_fd, .events = POLLIN } };

	for (;;) {
		double left = deadline - now_s();

		if (left <= 0 || stop_requested)
			return -ETIMEDOUT;
		if (poll(pfd, 2, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(out_fd, out + *len, OUT_MAX - 1 - *len);

			if (n > 0)
				*len += n;
			else
				pfd[1].fd = -1;	/* EOF, or the buffer is full: stop reading */
		}
		if (pfd[0].revents & POLLIN)
			return 0;
	}
}

static int status_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	return 128 + WTERMSIG(wstatus);
}

/* The rest of the output after exit: non-blocking, since a restored process might still hold a
 * copy of the pipe (it should not: it gets its own descriptors back). */
static void drain(int out_fd, char *out, size_t *len)
{
	ssize_t n;

	fcntl(out_fd, F_SETFL, O_NONBLOCK);
	while (*len < OUT_MAX - 1 && (n = read(out_fd, out + *len, OUT_MAX - 1 - *len)) > 0)
		*len += n;
}

int crest_run(char *const argv[], double timeout_s, struct crest_result *res)
{
	static char out[OUT_MAX];
	size_t len = 0;
	int pipefd[2], pidfd, wstatus = 0, ret;
	double t0;

	memset(res, 0, sizeof(*res));
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	t0 = now_s();
	crest_pid = fork();
	if (crest_pid < 0) {
		ret = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return ret;
	}
	if (crest_pid == 0)
		exec_crest(argv, pipefd[1]);
	close(pipefd[1]);
	pidfd = syscall(SYS_pidfd_open, crest_pid, 0);
	ret = pidfd < 0 ? -errno : collect(pidfd, pipefd[0], out, &len, t0 + timeout_s);
	if (ret)
		kill(crest_pid, SIGKILL);
	waitpid(crest_pid, &wstatus, 0);
	res->wall_ms = (now_s() - t0) * 1e3;
	crest_pid = 0;
	drain(pipefd[0], out, &len);
	close(pipefd[0]);
	if (pidfd >= 0)
		close(pidfd);
	out[len] = 0;
	res->status = ret ? -1 : status_of(wstatus);
	parse_output(out, res);
	if (ret == -ETIMEDOUT)
		snprintf(res->last_line, sizeof(res->last_line), "killed after %.0f s", timeout_s);
	return ret;
}

/* `crest dump --help` names its options; the lead adds --compress while this is written. */
void crest_probe_compress(void)
{
	char *argv[] = { "crest", "dump", "--help", NULL };
	static char out[OUT_MAX];
	int pipefd[2], wstatus;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	opts.compress_opt[0] = 0;
	if (pipe2(pipefd, O_CLOEXEC))
		return;
	pid = fork();
	if (pid == 0)
		exec_crest(argv, pipefd[1]);
	close(pipefd[1]);
	while (pid > 0 && len < OUT_MAX - 1 && (n = read(pipefd[0], out + len, OUT_MAX - 1 - len)) > 0)
		len += n;
	close(pipefd[0]);
	if (pid > 0)
		waitpid(pid, &wstatus, 0);
	out[len] = 0;
	if (strstr(out, "--compress"))
		snprintf(opts.compress_opt, sizeof(opts.compress_opt), "--compress");
}
