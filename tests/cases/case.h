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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
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

/* Prints "ready" and waits for SIGTERM: what a case does between its setup and its checks. */
static inline void case_ready_wait(void)
{
	case_ready();
	case_wait();
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

/*
 * case_fork() of a child that runs setup() and then child_main(), which never returns; the
 * parent goes on once the child's setup is done (it says so through a pipe).
 */
static inline pid_t case_fork_after(void (*setup)(void), void (*child_main)(void),
				    const char *what)
{
	int sync[2];
	pid_t pid;
	char c;

	if (pipe(sync))
		case_die("pipe: %m");
	pid = case_fork();
	if (pid == 0) {
		close(sync[0]);
		setup();
		if (write(sync[1], "x", 1) != 1)
			case_die("pipe: %m");
		close(sync[1]);
		child_main();
	}
	close(sync[1]);
	if (read(sync[0], &c, 1) != 1)
		case_die("the child did not %s", what);
	close(sync[0]);
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

/* Waits until cond holds, looking every 2 ms for at most ms milliseconds; says whether it holds. */
#define case_wait_until(cond, ms) ({							\
	int64_t case_end_ = case_now_ns(CLOCK_MONOTONIC) + (int64_t)(ms) * 1000000;		\
	while (!(cond) && case_now_ns(CLOCK_MONOTONIC) < case_end_)				\
		case_sleep_ms(2);							\
	(bool)(cond);									\
})

/* Waits at most ms milliseconds for events on fd (poll); says whether they came. */
static inline bool case_poll(int fd, short events, int ms)
{
	struct pollfd p = { fd, events, 0 };

	return poll(&p, 1, ms) == 1;
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

/* Blocks SIGTERM in the calling thread (*old: the mask before, if old): it is the main thread's. */
static inline void case_block_term(sigset_t *old)
{
	sigset_t term;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, old);
}

/* The stage that a case's threads have reached, for case_set_stage and case_wait_stage. */
static pthread_mutex_t case_stage_lock __attribute__((unused)) = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t case_stage_cond __attribute__((unused)) = PTHREAD_COND_INITIALIZER;
static int case_stage __attribute__((unused));

/* Says that stage s is reached: wakes the threads waiting for it in case_wait_stage. */
static inline void case_set_stage(int s)
{
	pthread_mutex_lock(&case_stage_lock);
	case_stage = s;
	pthread_cond_broadcast(&case_stage_cond);
	pthread_mutex_unlock(&case_stage_lock);
}

/* Waits until case_set_stage has said that stage want (or a later one) is reached. */
static inline void case_wait_stage(int want)
{
	pthread_mutex_lock(&case_stage_lock);
	while (case_stage < want)
		pthread_cond_wait(&case_stage_cond, &case_stage_lock);
	pthread_mutex_unlock(&case_stage_lock);
}

/* Forks a child that runs fn, then ends as case_child_exit does; returns the child's pid. */
static inline pid_t case_spawn(void (*fn)(void))
{
	pid_t pid = case_fork();

	if (pid == 0) {
		fn();
		case_child_exit();
	}
	return pid;
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

/* ---- descriptors ---------------------------------------------------------------------------- */

/* Moves fd to number want (dup3 with flags: O_CLOEXEC or 0) and closes fd; setup: dies on error. */
static inline int case_move_fd(int fd, int want, int flags)
{
	if (fd < 0)
		case_die("no descriptor to put at %d: %m", want);
	if (fd != want && (dup3(fd, want, flags) != want || close(fd)))
		case_die("dup3 %d to %d: %m", fd, want);
	return want;
}

/* Opens path at fd number want, close-on-exec if flags have O_CLOEXEC; setup: dies on error. */
static inline int case_open_at(const char *path, int flags, mode_t mode, int want)
{
	int fd = open(path, flags, mode);

	if (fd < 0)
		case_die("open %s: %m", path);
	return case_move_fd(fd, want, flags & O_CLOEXEC);
}

/* Opens OUTFILE.suffix at fd number want, as case_open_at does. */
static inline int case_open_out_at(const char *suffix, int flags, mode_t mode, int want)
{
	char path[PATH_MAX];

	case_path(path, sizeof(path), suffix);
	return case_open_at(path, flags, mode, want);
}

/* What fd points to (/proc/self/fd/N) into buf, NUL-terminated, "" on error; readlink's result. */
static inline ssize_t case_fd_link(int fd, char *buf, size_t size)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Checks fd's status flags (F_GETFL) against want. */
static inline void case_check_fl(int fd, int want)
{
	int fl = fcntl(fd, F_GETFL);

	case_check(fl == want, "fd %d: status flags %#o, want %#o", fd, fl, want);
}

/* Checks fd's descriptor flags (F_GETFD, that is FD_CLOEXEC) against want. */
static inline void case_check_fdfl(int fd, int want)
{
	int fdfl = fcntl(fd, F_GETFD);

	case_check(fdfl == want, "fd %d: fd flags %#x, want %#x", fd, fdfl, want);
}

/* Checks that fd is still an anon_inode:[kind] file ("eventfd", ...) with these flags. */
static inline void case_check_anon_fd(int fd, const char *kind, int fl, int fdfl)
{
	char link[64], want[64];
	ssize_t n = case_fd_link(fd, link, sizeof(link));

	snprintf(want, sizeof(want), "anon_inode:[%s]", kind);
	case_check(!strcmp(link, want), "fd %d: is %s, want %s %s", fd, n > 0 ? link : "not open",
		   strchr("aeiou", kind[0]) ? "an" : "a", kind);
	case_check_fl(fd, fl);
	case_check_fdfl(fd, fdfl);
}

/* A descriptor as a case saw it at "ready": where it points, its flags, its position. */
struct case_fd {
	int fd;
	char link[PATH_MAX];
	int fl, fdfl;
	off_t pos;
};

/* Records f->fd as it is now; setup: dies if it is not open. */
static inline void case_fd_record(struct case_fd *f)
{
	if (case_fd_link(f->fd, f->link, sizeof(f->link)) < 0)
		case_die("readlink /proc/self/fd/%d: %m", f->fd);
	f->fl = fcntl(f->fd, F_GETFL);
	f->fdfl = fcntl(f->fd, F_GETFD);
	f->pos = lseek(f->fd, 0, SEEK_CUR);
}

/* What case_fd_check compares besides the path and the status flags (a mask). */
#define CASE_FD_FDFL 1	/* the descriptor flags */
#define CASE_FD_POS 2	/* the position */

/* Compares f->fd with what case_fd_record saw; false, after one FAIL, if it is not open. */
static inline bool case_fd_check(const struct case_fd *f, int what)
{
	char link[PATH_MAX];
	off_t pos;

	if (case_fd_link(f->fd, link, sizeof(link)) < 0) {
		case_fail("fd %d: not open: %m", f->fd);
		return false;
	}
	case_check(!strcmp(link, f->link), "fd %d: path %s, want %s", f->fd, link, f->link);
	case_check_fl(f->fd, f->fl);
	if (what & CASE_FD_FDFL)
		case_check_fdfl(f->fd, f->fdfl);
	if (what & CASE_FD_POS) {
		pos = lseek(f->fd, 0, SEEK_CUR);
		case_check(pos == f->pos, "fd %d: position %lld, want %lld", f->fd, (long long)pos,
			   (long long)f->pos);
	}
	return true;
}

/* fstat of fd into *st, its size and mode checked against *want; false, after a FAIL, on error. */
static inline bool case_fstat_check(int fd, const struct stat *want, struct stat *st)
{
	if (fstat(fd, st)) {
		case_fail("fd %d: fstat: %m", fd);
		return false;
	}
	case_check(st->st_size == want->st_size, "fd %d: size %lld, want %lld", fd,
		   (long long)st->st_size, (long long)want->st_size);
	case_check(st->st_mode == want->st_mode, "fd %d: mode %o, want %o", fd, st->st_mode,
		   want->st_mode);
	return true;
}

/* Reads fd's /proc/self/fdinfo/N into buf (NUL-terminated); returns the length or -1. */
static inline ssize_t case_fdinfo(int fd, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return case_read_file(path, buf, size);
}

/* The text after key in fd's fdinfo, blanks skipped, up to the newline, into out ("" if absent). */
static inline const char *case_fdinfo_field(int fd, const char *key, char *out, size_t len)
{
	char buf[4096], *p;

	out[0] = '\0';
	if (case_fdinfo(fd, buf, sizeof(buf)) < 0 || !(p = strstr(buf, key)))
		return out;
	p += strlen(key);
	while (*p == ' ' || *p == '\t')
		p++;
	snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
	return out;
}

/* Ends the child sharing fd (case_check_child); its write of len bytes must move our offset. */
static inline off_t case_check_child_write(pid_t pid, int fd, off_t len, const char *what)
{
	off_t at = lseek(fd, 0, SEEK_CUR), now;

	case_check_child(pid, what);
	now = lseek(fd, 0, SEEK_CUR);
	case_check(now == at + len,
		   "fd %d: the child's write moved the shared offset to %lld, want %lld", fd,
		   (long long)now, (long long)(at + len));
	return at;
}

/* ---- data ----------------------------------------------------------------------------------- */

/* Byte off of test pattern seed: the data cases write (to files, pipes, sockets) and read back. */
static inline uint8_t case_pattern(off_t off, int seed)
{
	return (uint8_t)(off * 13 + seed * 7 + (off >> 8));
}

/* Fills buf with the len bytes of pattern seed that start at offset off. */
static inline void case_pattern_fill(uint8_t *buf, off_t off, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = case_pattern(off + (off_t)i, seed);
}

/* Index of the first byte of buf not pattern seed from offset off (0 if seed < 0), or -1. */
static inline ssize_t case_pattern_diff(const uint8_t *buf, off_t off, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (seed < 0 ? 0 : case_pattern(off + (off_t)i, seed)))
			return (ssize_t)i;
	return -1;
}

/* Writes len bytes of pattern seed at offset off of fd (pwrite); dies on error. */
static inline void case_fill(int fd, off_t off, size_t len, int seed)
{
	uint8_t buf[4096];
	size_t n;

	for (size_t done = 0; done < len; done += n) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		case_pattern_fill(buf, off + (off_t)done, n, seed);
		if (pwrite(fd, buf, n, off + (off_t)done) != (ssize_t)n)
			case_die("pwrite fd %d: %m", fd);
	}
}

/* Checks that the len bytes at offset off of fd (pread) are pattern seed, or zeros if seed < 0. */
static inline void case_check_bytes(int fd, off_t off, size_t len, int seed)
{
	uint8_t buf[4096];
	size_t n;
	ssize_t got, bad;

	for (size_t done = 0; done < len; done += n) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		got = pread(fd, buf, n, off + (off_t)done);
		if (got != (ssize_t)n) {
			case_fail("fd %d: pread of %zu at %lld returned %zd: %m", fd, n,
				  (long long)(off + (off_t)done), got);
			return;
		}
		bad = case_pattern_diff(buf, off + (off_t)done, n, seed);
		if (bad >= 0) {
			case_fail("fd %d: byte %lld differs", fd,
				  (long long)(off + (off_t)done + bad));
			return;
		}
	}
}

/* ---- sockets -------------------------------------------------------------------------------- */

/* A new socket (socket(2)'s arguments) at fd number want; setup: dies on error. */
static inline int case_socket_at(int domain, int type, int protocol, int want)
{
	return case_move_fd(socket(domain, type, protocol), want, 0);
}

/* A unix socketpair of type at fd numbers a and b; setup: dies on error. */
static inline void case_socketpair_at(int type, int a, int b)
{
	int sv[2];

	if (socketpair(AF_UNIX, type, 0, sv))
		case_die("socketpair: %m");
	case_move_fd(sv[0], a, 0);
	case_move_fd(sv[1], b, 0);
}

/* Sets the integer socket option (level, name), called label in messages; dies on error. */
static inline void case_setsockopt_int(int fd, int level, int name, int val, const char *label)
{
	if (setsockopt(fd, level, name, &val, sizeof(val)))
		case_die("fd %d: setsockopt %s=%d: %m", fd, label, val);
}

/* case_setsockopt_int labelled with the option's own name: case_set_int(fd, SOL_IP, IP_TTL, 9). */
#define case_set_int(fd, level, name, val) case_setsockopt_int(fd, level, name, val, #name)

/* An integer socket option that a case reads at "ready" and compares after restore. */
struct case_sockopt {
	int level, name;
	const char *label;
};

/* A struct case_sockopt labelled with the option's own name. */
#define CASE_SOCKOPT(level, name) { level, name, #name }

/* The options every inet socket of a case is checked for: the start of a case_sockopt list. */
#define CASE_SOCKOPTS_INET									\
	CASE_SOCKOPT(SOL_SOCKET, SO_REUSEADDR), CASE_SOCKOPT(SOL_SOCKET, SO_REUSEPORT),		\
	CASE_SOCKOPT(SOL_SOCKET, SO_RCVBUF), CASE_SOCKOPT(SOL_SOCKET, SO_SNDBUF),		\
	CASE_SOCKOPT(SOL_SOCKET, SO_BROADCAST), CASE_SOCKOPT(SOL_SOCKET, SO_DOMAIN),		\
	CASE_SOCKOPT(SOL_SOCKET, SO_TYPE), CASE_SOCKOPT(SOL_IP, IP_TOS),			\
	CASE_SOCKOPT(SOL_IP, IP_TTL), CASE_SOCKOPT(SOL_IPV6, IPV6_V6ONLY),			\
	CASE_SOCKOPT(SOL_IPV6, IPV6_UNICAST_HOPS)

/* The most options a list of struct case_sockopt may have. */
#define CASE_SOCKOPTS_MAX 32

/* One socket's values of a list of options (have: it has the option at all), its file flags. */
struct case_sockstate {
	int vals[CASE_SOCKOPTS_MAX];
	bool have[CASE_SOCKOPTS_MAX];
	int fl, fdfl;
};

/* Reads the n options opts of fd, and its file flags, into *s. */
static inline void case_sockstate_read(int fd, const struct case_sockopt *opts, size_t n,
				       struct case_sockstate *s)
{
	socklen_t len;

	if (n > CASE_SOCKOPTS_MAX)
		case_die("%zu socket options, at most %d", n, CASE_SOCKOPTS_MAX);
	for (size_t i = 0; i < n; i++) {
		len = sizeof(s->vals[i]);
		s->have[i] = !getsockopt(fd, opts[i].level, opts[i].name, &s->vals[i], &len);
		if (!s->have[i])
			s->vals[i] = 0;
	}
	s->fl = fcntl(fd, F_GETFL);
	s->fdfl = fcntl(fd, F_GETFD);
}

/* Compares what case_sockstate_read gives now for socket name (fd) with what it gave before. */
static inline void case_sockstate_check(const char *name, int fd, const struct case_sockopt *opts,
					size_t n, const struct case_sockstate *now,
					const struct case_sockstate *want)
{
	for (size_t i = 0; i < n && i < CASE_SOCKOPTS_MAX; i++)
		case_check(now->have[i] == want->have[i] && now->vals[i] == want->vals[i],
			   "%s (fd %d): %s is %d%s, want %d%s", name, fd, opts[i].label,
			   now->vals[i], now->have[i] ? "" : " (absent)", want->vals[i],
			   want->have[i] ? "" : " (absent)");
	case_check(now->fl == want->fl && now->fdfl == want->fdfl,
		   "%s (fd %d): flags %#o/%#x, want %#o/%#x", name, fd, now->fl, now->fdfl,
		   want->fl, want->fdfl);
}

/* True if fd is open; else one FAIL that names it (name: what the fd is) and false. */
static inline bool case_check_open(const char *name, int fd)
{
	if (fcntl(fd, F_GETFD) >= 0)
		return true;
	case_fail("%s (fd %d): not open", name, fd);
	return false;
}

/* 127.0.0.1 or ::1 (the wildcard address if any) of family at port, into *ss; its length. */
static inline socklen_t case_inet_addr(int family, bool any, in_port_t port,
				       struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (void *)ss;
	struct sockaddr_in6 *sin6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
		sin->sin_port = port;
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = any ? in6addr_any : in6addr_loopback;
	sin6->sin6_port = port;
	return sizeof(*sin6);
}

/* Binds fd to case_inet_addr(family, any) at a port the kernel picks; setup: dies on error. */
static inline void case_inet_bind(int fd, int family, bool any)
{
	struct sockaddr_storage ss;
	socklen_t len = case_inet_addr(family, any, 0, &ss);

	if (bind(fd, (struct sockaddr *)&ss, len))
		case_die("fd %d: bind: %m", fd);
}

/* An inet address of len bytes as text ("127.0.0.1:80", "[::1]:80", "(none)" if len is 0). */
static inline const char *case_inet_str(const struct sockaddr_storage *ss, socklen_t len,
					char *buf, size_t size)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (!len) {
		snprintf(buf, size, "(none)");
	} else if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, size, "(family %d)", ss->ss_family);
	}
	return buf;
}

/* Checks that socket name (fd) has the inet address it had (how: "bound to", "connected to"). */
static inline void case_check_inet_addr(const char *name, int fd, const char *how,
					const struct sockaddr_storage *now, socklen_t now_len,
					const struct sockaddr_storage *want, socklen_t want_len)
{
	char a[80], b[80];

	case_check(now_len == want_len && !memcmp(now, want, now_len), "%s (fd %d): %s %s, want %s",
		   name, fd, how, case_inet_str(now, now_len, a, sizeof(a)),
		   case_inet_str(want, want_len, b, sizeof(b)));
}

/* The unix socket address of path into *sa; returns its length. */
static inline socklen_t case_unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1;
}

/* The abstract unix socket address named by fmt (printf) into *sa; returns its length. */
static inline __attribute__((format(printf, 2, 3))) socklen_t
case_unix_abstract(struct sockaddr_un *sa, const char *fmt, ...)
{
	char name[sizeof(sa->sun_path)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name) - 1, fmt, ap);
	va_end(ap);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, strlen(name));
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

/* Checks that nothing more is queued on socket fd: a MSG_PEEK says EAGAIN. */
static inline void case_check_empty(int fd, const char *what)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	case_check(n < 0 && errno == EAGAIN, "%s: more queued than there was (recv %zd: %m)", what,
		   n);
}

#endif
