/*
 * case.h: the protocol every checkpoint case follows (see DESIGN.md, Tests).
 *
 *   build/tests/cases/NAME OUTFILE
 *
 * stdout and stderr are OUTFILE, opened O_APPEND by the driver. A case sets up its state,
 * prints one "pid N" line for every process it creates (the driver kills them all if the test
 * goes wrong), prints "ready", waits for SIGTERM, then checks everything and prints "PASS"
 * (exit 0) or one "FAIL: what differs" line per difference (exit 1). Setup errors exit 2.
 *
 * Every line is written with one write(2) to fd 1, never through stdio buffers: cases fork, and
 * a buffer copied into a child would be printed twice.
 *
 * Sabotage (the driver's self-test, tests/test_selftest.py): with CASE_SABOTAGE=NAME in the
 * environment, case_sabotage("NAME") returns true at the point where the case damages its own
 * state on purpose, after SIGTERM and before checking; the case must then FAIL. With
 * CASE_SABOTAGE=? every point prints "sabotage NAME" and the case must still PASS, so the driver
 * learns the names of the points without a second list to keep in step.
 */
#ifndef CREST_TESTS_CASE_H
#define CREST_TESTS_CASE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

/* OUTFILE, argv[1]. */
static const char *case_out __attribute__((unused));
/* Set by the SIGTERM handler: time to check. */
static volatile sig_atomic_t case_term __attribute__((unused));
/* Number of FAIL lines printed by this process. */
static int case_nfail __attribute__((unused));
/* Optional extra work for the SIGTERM handler (must be async-signal-safe). */
static void (*case_term_hook)(void) __attribute__((unused));

static inline void case_vsay(const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t off = 0;
	int n;

	n = snprintf(buf, sizeof(buf), "%s", prefix);
	off = n > 0 ? (size_t)n : 0;
	n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
	if (n > 0)
		off += (size_t)n < sizeof(buf) - off - 1 ? (size_t)n : sizeof(buf) - off - 2;
	buf[off++] = '\n';
	/* One write per line: lines from several processes and threads do not interleave. */
	while (write(1, buf, off) < 0 && errno == EINTR)
		;
}

/* Prints one line to OUTFILE. */
static inline __attribute__((format(printf, 1, 2))) void case_say(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	case_vsay("", fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Reports one difference; the case will exit 1. */
static inline __attribute__((format(printf, 1, 2))) void case_fail(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	__atomic_add_fetch(&case_nfail, 1, __ATOMIC_SEQ_CST);
	va_start(ap, fmt);
	case_vsay("FAIL: ", fmt, ap);
	va_end(ap);
	errno = saved;
}

/* A setup step failed: the case cannot run at all. */
static inline __attribute__((format(printf, 1, 2), noreturn)) void case_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	case_vsay("FAIL: setup: ", fmt, ap);
	va_end(ap);
	_exit(2);
}

/* Checks a condition and reports it as a difference when false. */
#define case_check(cond, ...) do { if (!(cond)) case_fail(__VA_ARGS__); } while (0)

static inline bool case_sabotage(const char *name)
{
	const char *want = getenv("CASE_SABOTAGE");

	if (!want || !*want)
		return false;
	if (strcmp(want, "?") == 0) {
		case_say("sabotage %s", name);
		return false;
	}
	return strcmp(want, name) == 0;
}

static void case_on_term(int sig)
{
	case_term = 1;
	if (case_term_hook)
		case_term_hook();
}

/*
 * Checks the arguments, installs the SIGTERM handler (SA_RESTART, so that a slow call the case
 * makes in the same thread is not cut short by it) and prints "pid N" for this process.
 */
static inline void case_init(int argc, char **argv)
{
	struct sigaction sa;

	if (argc < 2) {
		fprintf(stderr, "usage: %s OUTFILE\n", argv[0]);
		exit(2);
	}
	case_out = argv[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = case_on_term;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL))
		case_die("sigaction(SIGTERM): %m");
	case_say("pid %d", getpid());
}

static inline void case_ready(void)
{
	case_say("ready");
}

/* Waits until SIGTERM has arrived, in sigsuspend, whatever the caller's signal mask is. */
static inline void case_wait(void)
{
	sigset_t block, old, wait;

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	wait = old;
	sigdelset(&wait, SIGTERM);
	while (!case_term)
		sigsuspend(&wait);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* fork() that reports the child's pid to the driver. */
static inline pid_t case_fork(void)
{
	pid_t pid = fork();

	if (pid < 0)
		case_die("fork: %m");
	if (pid > 0)
		case_say("pid %d", pid);
	return pid;
}

static inline int64_t case_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void case_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Waits at most ms milliseconds for child pid to exit. Returns 0 with *status set, or -1 with
 * errno set (ETIMEDOUT, or waitpid's error).
 */
static inline int case_wait_child(pid_t pid, int ms, int *status)
{
	int64_t end = case_now_ns(CLOCK_MONOTONIC) + (int64_t)ms * 1000000;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (case_now_ns(CLOCK_MONOTONIC) > end) {
			errno = ETIMEDOUT;
			return -1;
		}
		case_sleep_ms(5);
	}
}

/* Sends SIGTERM to child pid, waits for it and reports a failure unless it exited 0. */
static inline void case_check_child(pid_t pid, const char *what)
{
	int status;

	if (kill(pid, SIGTERM))
		case_fail("%s (pid %d): cannot send SIGTERM: %m", what, pid);
	if (case_wait_child(pid, 10000, &status)) {
		case_fail("%s (pid %d): waitpid: %m", what, pid);
		kill(pid, SIGKILL);
		return;
	}
	if (WIFSIGNALED(status))
		case_fail("%s (pid %d) was killed by signal %d", what, pid, WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		case_fail("%s (pid %d) failed its checks (exit %d)", what, pid, WEXITSTATUS(status));
}

/* Ends a child process: its parent turns the status into a FAIL line. */
static inline __attribute__((noreturn)) void case_child_exit(void)
{
	_exit(case_nfail ? 1 : 0);
}

/* Ends the case. */
static inline __attribute__((noreturn)) void case_finish(void)
{
	if (case_nfail)
		exit(1);
	case_say("PASS");
	exit(0);
}

/* "OUTFILE.suffix", for the files a case creates next to its output. */
static inline void case_path(char *buf, size_t size, const char *suffix)
{
	snprintf(buf, size, "%s.%s", case_out, suffix);
}

/*
 * Reads a whole (/proc) file into buf with open/read, which do not allocate: some cases compare
 * their memory layout before and after, and malloc could move the heap's end.
 * Returns the length, or -1 with errno set; the buffer is NUL-terminated.
 */
static inline ssize_t case_read_file(const char *path, char *buf, size_t size)
{
	size_t off = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (off < size - 1) {
		n = read(fd, buf + off, size - 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	return (ssize_t)off;
}

static inline pid_t case_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

#endif
