/*
 * sigpending: signals pending at dump time are still pending after restore, on the same queue
 * (the thread's own or the process's shared one), with their siginfo, and queued real-time
 * signals keep their count and order.
 *
 *   SIGUSR1       raise(): pending on the thread, si_code SI_TKILL
 *   SIGUSR2       kill(getpid()): pending on the process, si_code SI_USER
 *   SIGRTMIN+5    sigqueue() twice, values 1234 then 1235: both queued, in order
 *   SIGRTMIN+6    kill(getpid())
 * All of them are blocked; after SIGTERM they are taken with sigtimedwait().
 */
#include "case.h"

/* The hex mask of "name:" in /proc/thread-self/status (SigPnd or ShdPnd). */
static uint64_t status_mask(const char *name)
{
	static char buf[8192];
	char *p;

	if (case_read_file("/proc/thread-self/status", buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, name);
	return p ? strtoull(p + strlen(name), NULL, 16) : 0;
}

static uint64_t bit(int sig)
{
	return 1ull << (sig - 1);
}

static void take(int sig, int code, int value, const char *what)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;
	siginfo_t si;
	int r;

	sigemptyset(&set);
	sigaddset(&set, sig);
	/* the raw syscall: glibc's sigtimedwait turns SI_TKILL into SI_USER */
	r = (int)syscall(SYS_rt_sigtimedwait, &set, &si, &zero, 8);
	if (r != sig) {
		case_fail("%s: not pending (sigtimedwait: %m)", what);
		return;
	}
	case_check(si.si_code == code, "%s: si_code %d, want %d", what, si.si_code, code);
	case_check(si.si_pid == getpid(), "%s: si_pid %d, want %d", what, si.si_pid, getpid());
	case_check(si.si_uid == getuid(), "%s: si_uid %d, want %d", what, si.si_uid, getuid());
	if (code == SI_QUEUE)
		case_check(si.si_value.sival_int == value, "%s: value %d, want %d", what,
			   si.si_value.sival_int, value);
}

int main(int argc, char **argv)
{
	int rt5 = SIGRTMIN + 5, rt6 = SIGRTMIN + 6;
	uint64_t thread_want, shared_want, thread_pnd, shared_pnd;
	struct timespec zero = { 0, 0 };
	sigset_t block, set;

	case_init(argc, argv);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt5);
	sigaddset(&block, rt6);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	raise(SIGUSR1);
	kill(getpid(), SIGUSR2);
	sigqueue(getpid(), rt5, (union sigval){ .sival_int = 1234 });
	sigqueue(getpid(), rt5, (union sigval){ .sival_int = 1235 });
	kill(getpid(), rt6);
	thread_want = bit(SIGUSR1);
	shared_want = bit(SIGUSR2) | bit(rt5) | bit(rt6);
	case_ready_wait();

	if (case_sabotage("lost"))
		take(rt5, SI_QUEUE, 1234, "sabotage");
	if (case_sabotage("extra"))
		raise(SIGHUP);
	if (case_sabotage("queue")) {
		/* a restore that puts a process-wide signal on the thread's queue */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		sigtimedwait(&set, NULL, &zero);
		raise(SIGUSR2);
	}
	thread_pnd = status_mask("SigPnd:");
	shared_pnd = status_mask("ShdPnd:");
	case_check(thread_pnd == thread_want, "pending on the thread: %#llx, want %#llx",
		   (unsigned long long)thread_pnd, (unsigned long long)thread_want);
	case_check(shared_pnd == shared_want, "pending on the process: %#llx, want %#llx",
		   (unsigned long long)shared_pnd, (unsigned long long)shared_want);

	take(SIGUSR1, SI_TKILL, 0, "SIGUSR1");
	take(SIGUSR2, SI_USER, 0, "SIGUSR2");
	take(rt5, SI_QUEUE, 1234, "SIGRTMIN+5 (first)");
	take(rt5, SI_QUEUE, 1235, "SIGRTMIN+5 (second)");
	take(rt6, SI_USER, 0, "SIGRTMIN+6");
	sigemptyset(&set);
	sigaddset(&set, rt5);
	case_check(sigtimedwait(&set, NULL, &zero) < 0, "SIGRTMIN+5: queued a third time");
	case_finish();
}
