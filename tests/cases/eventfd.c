/*
 * eventfd: counters come back with their count, EFD_SEMAPHORE mode, status and fd flags, and
 * a counter shared by two fds and with a child is still one counter.
 *
 *   20   count 0x123456789 (past 32 bits), O_NONBLOCK, FD_CLOEXEC
 *   21   dup of 20: the same counter
 *   22   EFD_SEMAPHORE, count 3, blocking; shared with the child (opened before fork)
 *   23   count 0, O_NONBLOCK: reading it must say EAGAIN
 *   24   count 0xfffffffffffffffe, the largest an eventfd holds, O_NONBLOCK
 *
 * After SIGTERM the child takes one unit of fd 22 and the parent must then read 1 twice (the
 * semaphore had 3), then find it empty. Every other counter is read back.
 */
#include "case.h"

#include <linux/kcmp.h>
#include <sys/eventfd.h>

struct efd {
	int fd;
	uint64_t count;
	int flags;		/* eventfd(2) flags */
	int fl, fdfl;		/* F_GETFL, F_GETFD at setup */
};

static struct efd efds[] = {
	{ 20, 0x123456789ULL, EFD_NONBLOCK | EFD_CLOEXEC },
	{ 22, 3, EFD_SEMAPHORE },
	{ 23, 0, EFD_NONBLOCK },
	{ 24, 0xfffffffffffffffeULL, EFD_NONBLOCK },
};
#define NEFDS (sizeof(efds) / sizeof(efds[0]))

static void make_efd(struct efd *e)
{
	int fd = eventfd(0, e->flags);

	if (fd < 0)
		case_die("eventfd: %m");
	if (e->count && write(fd, &e->count, sizeof(e->count)) != sizeof(e->count))
		case_die("eventfd write %#llx: %m", (unsigned long long)e->count);
	case_move_fd(fd, e->fd, e->flags & EFD_CLOEXEC);
	e->fl = fcntl(e->fd, F_GETFL);
	e->fdfl = fcntl(e->fd, F_GETFD);
}

static void check_fdinfo(const struct efd *e)
{
	char want[32], got[64];

	case_check_anon_fd(e->fd, "eventfd", e->fl, e->fdfl);
	snprintf(want, sizeof(want), "%llx", (unsigned long long)e->count);
	case_fdinfo_field(e->fd, "eventfd-count:", got, sizeof(got));
	case_check(!strcmp(got, want), "fd %d: eventfd-count %s, want %s", e->fd, got, want);
	case_fdinfo_field(e->fd, "eventfd-semaphore:", got, sizeof(got));
	if (got[0])
		case_check(atoi(got) == !!(e->flags & EFD_SEMAPHORE),
			   "fd %d: eventfd-semaphore %s, want %d", e->fd, got,
			   !!(e->flags & EFD_SEMAPHORE));
}

/* Reads fd (non-blocking for the check) and compares with want; 0 means "must be empty". */
static void check_read(int fd, uint64_t want)
{
	int fl = fcntl(fd, F_GETFL);
	uint64_t v = 0;
	ssize_t n;

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = read(fd, &v, sizeof(v));
	fcntl(fd, F_SETFL, fl);
	if (!want)
		case_check(n < 0 && errno == EAGAIN, "fd %d: read %zd (value %#llx), want EAGAIN", fd,
			   n, (unsigned long long)v);
	else
		case_check(n == sizeof(v) && v == want, "fd %d: read %zd value %#llx, want %#llx: %m",
			   fd, n, (unsigned long long)v, (unsigned long long)want);
}

static void sabotage(void)
{
	uint64_t one = 1;
	int fd;

	if (case_sabotage("count") && write(20, &one, sizeof(one)) < 0)
		case_fail("sabotage count: %m");
	if (case_sabotage("semaphore")) {
		fd = eventfd(3, 0);
		dup2(fd, 22);
		close(fd);
	}
	if (case_sabotage("nonblock"))
		fcntl(23, F_SETFL, 0);
	if (case_sabotage("dup")) {
		fd = eventfd(0, EFD_NONBLOCK);
		write(fd, &efds[0].count, sizeof(efds[0].count));
		dup2(fd, 21);
		close(fd);
	}
}

static __attribute__((noreturn)) void child(void)
{
	uint64_t v = 0;

	case_wait();
	/* a semaphore read gives 1 and leaves the rest */
	if (read(22, &v, sizeof(v)) != sizeof(v) || v != 1)
		case_fail("child: fd 22: semaphore read gave %#llx: %m", (unsigned long long)v);
	case_child_exit();
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	for (size_t i = 0; i < NEFDS; i++)
		make_efd(&efds[i]);
	if (dup2(20, 21) != 21)
		case_die("dup2: %m");
	pid = case_spawn(child);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NEFDS; i++)
		check_fdinfo(&efds[i]);
	case_check(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 20, 21) == 0,
		   "fds 20 and 21 no longer share one eventfd");
	case_check_child(pid, "child sharing fd 22");
	check_read(22, 1);
	check_read(22, 1);
	check_read(22, 0);
	check_read(21, efds[0].count);
	check_read(20, 0);
	check_read(23, 0);
	check_read(24, efds[3].count);
	case_finish();
}
