/*
 * Drives one bench/workload tree: starts it, waits for every process to be ready, pings it,
 * asks it to check its memory, and kills it. The protocol (lines on a FIFO, commands by signal)
 * is described at the top of bench/workload.c. crestbench is a child subreaper (main.c), so a
 * tree that crest restored with -d, or the orphans of a killed one, come back to it and are
 * reaped here: their pids must be free again before the next restore.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

static struct workload *current;	/* for the signal handler */

/* Every known pid, and the root's process group: children that have not said "ready" yet
 * have no known pid, but they are in the group the root made with setsid(). */
static void kill_all(const struct workload *wl)
{
	if (wl->pids && wl->pids[0] > 0)
		kill(-wl->pids[0], SIGKILL);
	for (long i = 0; wl->pids && i < wl->nr_pids; i++)
		if (wl->pids[i] > 0)
			kill(wl->pids[i], SIGKILL);
}

void wl_kill_current(void)
{
	if (current)
		kill_all(current);
}

/* One line "TAG IDX PID rest"; returns the index, or -1 for a line that is not one. */
static long parse_msg(const char *line, char *tag, pid_t *pid, const char **rest)
{
	long idx;
	int pos = 0;

	if (sscanf(line, "%c %ld %d %n", tag, &idx, pid, &pos) != 3 || !pos)
		return -1;
	*rest = line + pos;
	return idx;
}

/* Handles one line; counts it in got[] if it is the awaited tag from a process not yet counted. */
static int handle_line(struct workload *wl, char *line, char want, char *seen, long *count)
{
	const char *rest;
	char tag;
	pid_t pid;
	long idx = parse_msg(line, &tag, &pid, &rest);

	if (idx < 0 || idx >= wl->nr_pids)
		return 0;
	if (tag == 'E' || (tag == 'V' && strncmp(rest, "OK", 2))) {
		if (!wl->error[0])
			snprintf(wl->error, sizeof(wl->error), "process %ld (pid %d): %s", idx, pid,
				 rest);
		return -EPROTO;
	}
	if (tag != want || seen[idx])
		return 0;
	if (tag == 'R')
		wl->pids[idx] = pid;
	seen[idx] = 1;
	(*count)++;
	return 0;
}

/* Splits what has been read into lines and handles each complete one. */
static int handle_buffer(struct workload *wl, char want, char *seen, long *count)
{
	char *start = wl->buf, *nl;
	int ret = 0;

	while (!ret && (nl = memchr(start, '\n', wl->buf + wl->buf_len - start))) {
		*nl = 0;
		ret = handle_line(wl, start, want, seen, count);
		start = nl + 1;
	}
	wl->buf_len -= start - wl->buf;
	memmove(wl->buf, start, wl->buf_len);
	return ret;
}

/* Waits for a line with tag want from every process, at most timeout_s. */
static int wait_lines(struct workload *wl, char want, double timeout_s)
{
	char *seen = calloc(wl->nr_pids, 1);
	double deadline = now_s() + timeout_s;
	struct pollfd pfd = { .fd = wl->fifo, .events = POLLIN };
	long count = 0;
	int ret = 0;

	if (!seen)
		return -ENOMEM;
	while (!ret && count < wl->nr_pids) {
		double left = deadline - now_s();
		ssize_t n;

		if (left <= 0 || stop_requested) {
			snprintf(wl->error, sizeof(wl->error), "only %ld of %ld processes answered '%c' within %.0f s",
				 count, wl->nr_pids, want, timeout_s);
			ret = -ETIMEDOUT;
			break;
		}
		if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		n = read(wl->fifo, wl->buf + wl->buf_len, sizeof(wl->buf) - wl->buf_len);
		if (n > 0) {
			wl->buf_len += n;
			ret = handle_buffer(wl, want, seen, &count);
		}
	}
	free(seen);
	return ret;
}

static void __attribute__((noreturn)) exec_workload(const struct workload *wl)
{
	const struct wl_config *c = &wl->cfg;
	char procs[24], kib[24], threads[24], fds[24], vmas[24];
	char *argv[] = { "workload", "--fifo", (char *)wl->fifo_path, "--procs", procs, "--kib",
			 kib, "--threads", threads, "--fds", fds, "--vmas", vmas, "--data",
			 (char *)c->data, c->sabotage ? "--sabotage" : NULL, NULL };

	snprintf(procs, sizeof(procs), "%ld", c->procs);
	snprintf(kib, sizeof(kib), "%zu", c->kib);
	snprintf(threads, sizeof(threads), "%ld", c->threads);
	snprintf(fds, sizeof(fds), "%ld", c->fds);
	snprintf(vmas, sizeof(vmas), "%ld", c->vmas);
	execv(opts.workload, argv);
	fprintf(stderr, "exec %s: %s\n", opts.workload, strerror(errno));
	_exit(127);
}

static int make_fifo(struct workload *wl)
{
	snprintf(wl->fifo_path, sizeof(wl->fifo_path), "%s/fifo", opts.workdir);
	unlink(wl->fifo_path);
	if (mkfifo(wl->fifo_path, 0600))
		return -errno;
	/* O_RDWR: the FIFO never reads as EOF while no workload process holds it open. */
	wl->fifo = open(wl->fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	return wl->fifo < 0 ? -errno : 0;
}

int wl_start(struct workload *wl, const struct wl_config *cfg, double timeout_s)
{
	pid_t pid;
	int ret;

	memset(wl, 0, sizeof(*wl));
	wl->cfg = *cfg;
	wl->nr_pids = cfg->procs;
	wl->fifo = -1;
	wl->pids = calloc(cfg->procs, sizeof(*wl->pids));
	if (!wl->pids)
		return -ENOMEM;
	ret = make_fifo(wl);
	if (ret) {
		snprintf(wl->error, sizeof(wl->error), "FIFO %s: %s", wl->fifo_path, strerror(-ret));
		return ret;
	}
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		exec_workload(wl);
	wl->pids[0] = pid;
	current = wl;
	return wait_lines(wl, 'R', timeout_s);
}

int wl_ask(struct workload *wl, int sig, char tag, double timeout_s, double *ms)
{
	double t0 = now_s();
	int ret;

	for (long i = 0; i < wl->nr_pids; i++)
		if (kill(wl->pids[i], sig)) {
			snprintf(wl->error, sizeof(wl->error), "process %ld (pid %d) is gone: %s", i,
				 wl->pids[i], strerror(errno));
			return -ESRCH;
		}
	ret = wait_lines(wl, tag, timeout_s);
	if (ms)
		*ms = (now_s() - t0) * 1e3;
	return ret;
}

void wl_stop(struct workload *wl)
{
	kill_all(wl);
	if (wl->pids)
		wait_pids_gone(wl->pids, wl->nr_pids, 30);
	current = NULL;
	free(wl->pids);
	wl->pids = NULL;
	if (wl->fifo >= 0)
		close(wl->fifo);
	wl->fifo = -1;
	unlink(wl->fifo_path);
}
