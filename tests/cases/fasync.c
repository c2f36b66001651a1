/*
 * fasync: the O_ASYNC owner and signal of descriptions of every kind come back (the fd table
 * restores them for kinds that do not keep them themselves), and I/O after restore signals
 * the right process with the right signal, si_fd naming the right descriptor.
 *
 *   50/51  a pipe, shared with the child; 50 has O_ASYNC, owner the child (F_OWNER_PID),
 *          signal SIGRTMIN+2: the parent writes into 51, the child must get it
 *   52/53  a socketpair, shared; 52 has O_ASYNC, owner the parent's thread (F_OWNER_TID),
 *          signal SIGRTMIN+3: the child writes into 53, the parent must get it
 *   54     an eventfd (no ->fasync: O_ASYNC cannot be set), owner the parent's process group
 *          (F_OWNER_PGRP), signal SIGRTMIN+4: both must read back
 */
#include "case.h"

#include <sys/eventfd.h>

static volatile sig_atomic_t got_sig, got_fd, got_code;

static void on_io(int sig, siginfo_t *si, void *uc)
{
	got_fd = si->si_fd;
	got_code = si->si_code;
	got_sig = sig;
}

static void catch(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_io;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		case_die("sigaction %d: %m", sig);
}

static void set_async(int fd, int type, pid_t owner, int sig, bool async)
{
	struct f_owner_ex o = { .type = type, .pid = owner };

	if (fcntl(fd, F_SETOWN_EX, &o) || fcntl(fd, F_SETSIG, sig))
		case_die("fd %d: owner and signal: %m", fd);
	if (async && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC))
		case_die("fd %d: O_ASYNC: %m", fd);
}

static void check_owner(int fd, int type, pid_t owner, int sig, bool async)
{
	struct f_owner_ex o = { 0 };

	if (fcntl(fd, F_GETOWN_EX, &o))
		case_fail("fd %d: F_GETOWN_EX: %m", fd);
	case_check((int)o.type == type && o.pid == owner, "fd %d: owner %d:%d, want %d:%d", fd, o.type,
		   o.pid, type, owner);
	case_check(fcntl(fd, F_GETSIG) == sig, "fd %d: signal %d, want %d", fd, fcntl(fd, F_GETSIG), sig);
	case_check(!!(fcntl(fd, F_GETFL) & O_ASYNC) == async, "fd %d: O_ASYNC %s, want %s", fd,
		   async ? "off" : "on", async ? "on" : "off");
}

/* Waits for signal sig about fd (POLL_IN) in this process. */
static void expect_io(int sig, int fd, const char *who)
{
	if (!case_wait_until(got_sig != 0, 3000)) {
		case_fail("%s: no signal after a write to fd %d", who, fd);
		return;
	}
	case_check(got_sig == sig, "%s: signal %d, want %d", who, (int)got_sig, sig);
	case_check(got_fd == fd, "%s: si_fd %d, want %d", who, (int)got_fd, fd);
	case_check(got_code == POLL_IN, "%s: si_code %d, want POLL_IN", who, (int)got_code);
}

static __attribute__((noreturn)) void child(void)
{
	case_wait();
	check_owner(50, F_OWNER_PID, getpid(), SIGRTMIN + 2, true);
	/* the parent wrote into 51 before it sent SIGTERM */
	expect_io(SIGRTMIN + 2, 50, "child (owner of pipe fd 50)");
	if (write(53, "y", 1) != 1)
		case_fail("child: write to 53: %m");
	case_child_exit();
}

static void sabotage(pid_t pid)
{
	if (case_sabotage("owner"))	/* what losing the owner gives */
		set_async(50, F_OWNER_PID, 0, SIGRTMIN + 2, true);
	if (case_sabotage("signal"))
		fcntl(52, F_SETSIG, 0);
	if (case_sabotage("si_fd")) {	/* O_ASYNC switched on at another number */
		int fd = dup(52);

		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_ASYNC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	int p[2], s[2];
	char c;
	pid_t pid;

	case_init(argc, argv);
	catch(SIGRTMIN + 2);
	catch(SIGRTMIN + 3);
	if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s))
		case_die("pipe, socketpair: %m");
	case_move_fd(p[0], 50, 0);
	case_move_fd(p[1], 51, 0);
	case_move_fd(s[0], 52, 0);
	case_move_fd(s[1], 53, 0);
	case_move_fd(eventfd(0, 0), 54, 0);
	pid = case_spawn(child);
	set_async(50, F_OWNER_PID, pid, SIGRTMIN + 2, true);
	set_async(52, F_OWNER_TID, getpid(), SIGRTMIN + 3, true);
	set_async(54, F_OWNER_PGRP, getpgrp(), SIGRTMIN + 4, false);
	case_ready_wait();

	sabotage(pid);
	check_owner(50, F_OWNER_PID, pid, SIGRTMIN + 2, true);
	check_owner(52, F_OWNER_TID, getpid(), SIGRTMIN + 3, true);
	check_owner(54, F_OWNER_PGRP, getpgrp(), SIGRTMIN + 4, false);
	if (write(51, "x", 1) != 1)
		case_fail("write to 51: %m");
	case_check(!got_sig, "the parent got signal %d, meant for the child", (int)got_sig);
	case_check_child(pid, "child owning pipe fd 50");
	expect_io(SIGRTMIN + 3, 52, "parent (owner of socket fd 52)");
	case_check(read(52, &c, 1) == 1 && c == 'y', "fd 52: the child's byte is not there");
	case_finish();
}
