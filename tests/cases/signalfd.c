/*
 * signalfd: descriptors come back with their signal mask, status and fd flags, and read the
 * signals that were pending when dumped and those sent after.
 *
 *   40   SIGUSR1 and SIGRTMIN+3, O_NONBLOCK
 *   41   SIGUSR2, blocking, FD_CLOEXEC; a SIGUSR2 (with a value) is pending at dump
 *   42   SIGWINCH and 64 (the last real-time signal)
 *
 * All those signals are blocked. After SIGTERM the case checks the masks (fdinfo "sigmask"),
 * reads the pending SIGUSR2 through fd 41, then raises SIGUSR1 and queues SIGRTMIN+3 and 64
 * and must read each through its descriptor.
 */
#include "case.h"

#include <sys/signalfd.h>

struct sfd {
	int fd;
	int sigs[3];		/* 0-terminated */
	int flags;		/* signalfd flags */
	uint64_t mask;		/* bit N-1 for signal N */
	int fl, fdfl;		/* F_GETFL, F_GETFD at setup */
};

static struct sfd sfds[] = {
	{ 40, { SIGUSR1, 0, 0 }, SFD_NONBLOCK },
	{ 41, { SIGUSR2, 0, 0 }, SFD_CLOEXEC },
	{ 42, { SIGWINCH, 64, 0 }, 0 },
};
#define NSFDS (sizeof(sfds) / sizeof(sfds[0]))

static void make_sfd(struct sfd *s, sigset_t *blocked)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	for (int i = 0; s->sigs[i]; i++) {
		sigaddset(&set, s->sigs[i]);
		sigaddset(blocked, s->sigs[i]);
		s->mask |= 1ULL << (s->sigs[i] - 1);
	}
	fd = signalfd(-1, &set, s->flags);
	if (fd < 0)
		case_die("signalfd: %m");
	case_move_fd(fd, s->fd, s->flags & SFD_CLOEXEC);
	s->fl = fcntl(s->fd, F_GETFL);
	s->fdfl = fcntl(s->fd, F_GETFD);
}

static void setup(void)
{
	union sigval val = { .sival_int = 4242 };
	sigset_t blocked;

	/* SIGRTMIN is a glibc value, not a constant */
	sfds[0].sigs[1] = SIGRTMIN + 3;
	sigemptyset(&blocked);
	for (size_t i = 0; i < NSFDS; i++)
		make_sfd(&sfds[i], &blocked);
	if (sigprocmask(SIG_BLOCK, &blocked, NULL))
		case_die("sigprocmask: %m");
	if (sigqueue(getpid(), SIGUSR2, val))
		case_die("sigqueue: %m");
}

static uint64_t fdinfo_mask(int fd)
{
	char got[64];

	return strtoull(case_fdinfo_field(fd, "sigmask:", got, sizeof(got)), NULL, 16);
}

static void check_sfd(const struct sfd *s)
{
	case_check_anon_fd(s->fd, "signalfd", s->fl, s->fdfl);
	case_check(fdinfo_mask(s->fd) == s->mask, "fd %d: sigmask %#llx, want %#llx", s->fd,
		   (unsigned long long)fdinfo_mask(s->fd), (unsigned long long)s->mask);
}

/* Reads one signal from fd without blocking and checks it is sig (with value val if nonzero). */
static void check_read(int fd, int sig, int val)
{
	struct signalfd_siginfo si;
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	memset(&si, 0, sizeof(si));
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	n = read(fd, &si, sizeof(si));
	fcntl(fd, F_SETFL, fl);
	if (n != sizeof(si)) {
		case_fail("fd %d: no signal %d to read (read gave %zd%s%s)", fd, sig, n,
			  n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		return;
	}
	case_check((int)si.ssi_signo == sig, "fd %d: read signal %u, want %d", fd, si.ssi_signo, sig);
	case_check(!val || si.ssi_int == val, "fd %d: signal %d carries %d, want %d", fd, sig,
		   si.ssi_int, val);
}

static void sabotage(void)
{
	sigset_t set;
	int fd;

	if (case_sabotage("mask")) {
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		fd = signalfd(-1, &set, SFD_NONBLOCK);
		dup2(fd, 40);
		close(fd);
	}
	if (case_sabotage("nonblock"))
		fcntl(40, F_SETFL, 0);
	if (case_sabotage("pending")) {
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		sigtimedwait(&set, NULL, &(struct timespec){ 0, 0 });
	}
}

int main(int argc, char **argv)
{
	union sigval val = { .sival_int = 64 };

	case_init(argc, argv);
	setup();
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NSFDS; i++)
		check_sfd(&sfds[i]);
	check_read(41, SIGUSR2, 4242);
	raise(SIGUSR1);
	check_read(40, SIGUSR1, 0);
	sigqueue(getpid(), SIGRTMIN + 3, val);
	check_read(40, SIGRTMIN + 3, 64);
	sigqueue(getpid(), 64, val);
	check_read(42, 64, 64);
	case_finish();
}
