/*
 * pidfd: descriptors of processes come back referring to the same processes (live, zombie,
 * or reaped with the same exit status), with their status and fd flags.
 *
 *   60   child A, alive: after SIGTERM the parent stops it through the pidfd
 *        (pidfd_send_signal) and reaps it through the pidfd (waitid P_PIDFD)
 *   61   child Z, exited 7 and not reaped: a zombie; O_NONBLOCK (PIDFD_NONBLOCK)
 *   62   child D, exited 42 and reaped: fdinfo "Pid: -1", PIDFD_GET_INFO tells the status
 *   63   child K, killed by SIGUSR1 and reaped; FD_CLOEXEC
 *   64   the case itself, PIDFD_THREAD (on kernels that have it)
 *   66   in child A: its parent, the case
 */
#include "case.h"

#include <linux/types.h>
#include <sys/ioctl.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
struct pidfd_info_v0 {
	__u64 mask;
	__u64 cgroupid;
	__u32 pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	__s32 exit_code;
};
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_EXIT (1UL << 3)

struct pfd {
	int fd;
	pid_t pid;		/* fdinfo "Pid" it must show */
	int status;		/* the exit status PIDFD_GET_INFO must show, for reaped ones */
	int fl, fdfl;		/* F_GETFL, F_GETFD at setup */
};

static struct pfd pfds[5] = { { 60 }, { 61 }, { 62 }, { 63 }, { 64 } };
static bool have_exit_info;	/* the kernel reports the exit status of a reaped process */

static int pidfd_open(pid_t pid, unsigned int flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

/* A pidfd of pid at number fd, with FD_CLOEXEC if cloexec. */
static void put_pidfd(int fd, pid_t pid, unsigned int flags, bool cloexec)
{
	int p = pidfd_open(pid, flags);

	if (p < 0)
		case_die("pidfd_open(%d, %#x): %m", pid, flags);
	case_move_fd(p, fd, cloexec ? O_CLOEXEC : 0);
}

/* fdinfo "Pid:" of fd, or -2 if it has none. */
static int fdinfo_pid(int fd)
{
	char got[64];

	return case_fdinfo_field(fd, "\nPid:", got, sizeof(got))[0] ? atoi(got) : -2;
}

/* The exit status PIDFD_GET_INFO reports for fd, or -1. */
static int exit_info(int fd)
{
	struct pidfd_info_v0 info = { .mask = PIDFD_INFO_EXIT };

	if (ioctl(fd, PIDFD_GET_INFO_V0, &info) || !(info.mask & PIDFD_INFO_EXIT))
		return -1;
	return info.exit_code;
}

/* A child that ends at once: exit code, or death by signal sig when sig != 0. */
static pid_t short_child(int code, int sig)
{
	pid_t pid = case_fork();

	if (pid == 0) {
		if (sig) {
			signal(sig, SIG_DFL);
			raise(sig);
		}
		_exit(code);
	}
	return pid;
}

static __attribute__((noreturn)) void child_a(void)
{
	pid_t parent = getppid();

	put_pidfd(66, parent, 0, false);
	case_wait();
	case_check(fdinfo_pid(66) == parent, "child: fd 66: Pid %d, want its parent %d",
		   fdinfo_pid(66), parent);
	case_check(syscall(SYS_pidfd_send_signal, 66, 0, NULL, 0) == 0,
		   "child: fd 66: cannot signal its parent: %m");
	case_child_exit();
}

static void setup(void)
{
	pid_t a = case_spawn(child_a), z, d, k;

	put_pidfd(60, a, 0, false);
	z = short_child(7, 0);
	put_pidfd(61, z, O_NONBLOCK, false);
	d = short_child(42, 0);
	put_pidfd(62, d, 0, false);
	k = short_child(0, SIGUSR1);
	put_pidfd(63, k, 0, true);
	if (waitpid(d, NULL, 0) != d || waitpid(k, NULL, 0) != k)
		case_die("waitpid: %m");
	if (pidfd_open(getpid(), PIDFD_THREAD) >= 0)
		put_pidfd(64, getpid(), PIDFD_THREAD, false);
	else
		put_pidfd(64, getpid(), 0, false);
	/* Z must have exited before "ready": the dump must see a zombie */
	if (!case_poll(61, POLLIN, 10000))
		case_die("child Z (pid %d) did not exit", z);
	have_exit_info = exit_info(62) == 42 << 8;
	pfds[0] = (struct pfd){ 60, a };
	pfds[1] = (struct pfd){ 61, z };
	pfds[2] = (struct pfd){ 62, -1, 42 << 8 };
	pfds[3] = (struct pfd){ 63, -1, SIGUSR1 };
	pfds[4] = (struct pfd){ 64, getpid() };
	for (int i = 0; i < 5; i++) {
		pfds[i].fl = fcntl(pfds[i].fd, F_GETFL);
		pfds[i].fdfl = fcntl(pfds[i].fd, F_GETFD);
	}
}

static void check_common(const struct pfd *p)
{
	case_check_anon_fd(p->fd, "pidfd", p->fl, p->fdfl);
	case_check(fdinfo_pid(p->fd) == p->pid, "fd %d: Pid %d, want %d", p->fd, fdinfo_pid(p->fd),
		   p->pid);
}

/* Reaps a child through its pidfd; returns its wait status, or -1. */
static int reap_by_pidfd(int fd, pid_t pid, int timeout_ms)
{
	siginfo_t si;

	if (!case_poll(fd, POLLIN, timeout_ms)) {
		case_fail("fd %d: pid %d did not exit", fd, pid);
		return -1;
	}
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG)) {
		case_fail("fd %d: waitid(P_PIDFD): %m", fd);
		return -1;
	}
	case_check(si.si_pid == pid, "fd %d: waitid reaped %d, want %d", fd, si.si_pid, pid);
	return si.si_code == CLD_EXITED ? si.si_status << 8 : si.si_status;
}

static void check_processes(void)
{
	int st;

	/* fd 60 no longer names child A (already reported): end A the ordinary way */
	if (fdinfo_pid(60) != pfds[0].pid) {
		case_check_child(pfds[0].pid, "child A");
	} else {
		if (syscall(SYS_pidfd_send_signal, 60, SIGTERM, NULL, 0))
			case_fail("fd 60: pidfd_send_signal to child A: %m");
		st = reap_by_pidfd(60, pfds[0].pid, 10000);
		case_check(st == 0, "child A (pid %d) ended with status %#x: its checks failed",
			   pfds[0].pid, st);
	}
	st = reap_by_pidfd(61, pfds[1].pid, 0);
	case_check(st == 7 << 8, "fd 61: the zombie ended with status %#x, want exit 7", st);
	for (int i = 2; i < 4; i++) {
		case_check(syscall(SYS_pidfd_send_signal, pfds[i].fd, 0, NULL, 0) < 0 && errno == ESRCH,
			   "fd %d: a reaped process can be signalled", pfds[i].fd);
		case_check(case_poll(pfds[i].fd, POLLIN, 0),
			   "fd %d: a reaped process does not poll as exited", pfds[i].fd);
		if (have_exit_info)
			case_check(exit_info(pfds[i].fd) == pfds[i].status,
				   "fd %d: exit status %#x, want %#x", pfds[i].fd,
				   exit_info(pfds[i].fd), pfds[i].status);
	}
	case_check(syscall(SYS_pidfd_send_signal, 64, 0, NULL, 0) == 0,
		   "fd 64: cannot signal the case itself: %m");
}

static void sabotage(void)
{
	if (case_sabotage("target"))
		put_pidfd(60, getpid(), 0, false);
	if (case_sabotage("zombie"))
		put_pidfd(61, getpid(), O_NONBLOCK, false);
	if (case_sabotage("nonblock"))
		fcntl(61, F_SETFL, 0);
	if (case_sabotage("status")) {
		pid_t pid = short_child(0, 0);

		put_pidfd(62, pid, 0, false);
		waitpid(pid, NULL, 0);
		if (!have_exit_info)
			put_pidfd(62, getpid(), 0, false);
	}
	if (case_sabotage("cloexec"))
		fcntl(63, F_SETFD, 0);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	case_ready_wait();

	sabotage();
	for (int i = 0; i < 5; i++)
		check_common(&pfds[i]);
	check_processes();
	case_finish();
}
