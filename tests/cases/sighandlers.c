/*
 * sighandlers: signal dispositions and the blocked mask survive a checkpoint, and the handlers
 * still run with the flags and masks they were installed with.
 *
 *   SIGUSR1      handler, SA_SIGINFO|SA_RESTART, sa_mask {SIGUSR2, SIGINT}
 *   SIGUSR2      handler, SA_NODEFER, sa_mask {SIGHUP}; blocked
 *   SIGRTMIN+3   handler, SA_SIGINFO|SA_RESETHAND, sa_mask {SIGALRM, SIGRTMIN+7}
 *   SIGCHLD      handler, SA_NOCLDSTOP
 *   SIGPIPE, SIGWINCH  SIG_IGN
 *   blocked      SIGUSR2, SIGRTMIN+10
 *
 * Every signal's kernel sigaction (handler, flags, restorer, mask, read with the raw
 * rt_sigaction syscall) is compared field by field with the one recorded before "ready"; then
 * each handler is made to run and checks what it receives (siginfo, the mask in force).
 */
#include "case.h"

/* The kernel's struct sigaction on x86_64, as rt_sigaction(2) reads and writes it. */
struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

#define NSIG_MAX 64
static struct ksigaction before[NSIG_MAX + 1];
static sigset_t blocked_before;
static volatile int usr1_runs, usr2_runs, rt_runs;
static int other_runs;

static void get_ksig(int sig, struct ksigaction *ks)
{
	memset(ks, 0, sizeof(*ks));
	syscall(SYS_rt_sigaction, sig, NULL, ks, 8);
}

static void handler_mask_check(const char *who, const int *want, const int *not)
{
	sigset_t cur;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	for (; *want; want++)
		case_check(sigismember(&cur, *want), "%s: signal %d not blocked in the handler", who,
			   *want);
	for (; *not; not++)
		case_check(!sigismember(&cur, *not), "%s: signal %d blocked in the handler", who,
			   *not);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	usr1_runs++;
	case_check(si->si_signo == SIGUSR1 && si->si_code == SI_TKILL && si->si_pid == getpid(),
		   "SIGUSR1: siginfo signo %d code %d pid %d", si->si_signo, si->si_code, si->si_pid);
	handler_mask_check("SIGUSR1", (const int[]){ SIGUSR1, SIGUSR2, SIGINT, 0 },
			   (const int[]){ SIGHUP, 0 });
}

static void on_usr2(int sig)
{
	usr2_runs++;
	handler_mask_check("SIGUSR2", (const int[]){ SIGHUP, 0 }, (const int[]){ SIGUSR2, SIGINT, 0 });
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	rt_runs++;
	case_check(si->si_code == SI_QUEUE && si->si_value.sival_int == 77,
		   "SIGRTMIN+3: siginfo code %d value %d, want SI_QUEUE and 77", si->si_code,
		   si->si_value.sival_int);
	handler_mask_check("SIGRTMIN+3", (const int[]){ SIGALRM, SIGRTMIN + 7, SIGRTMIN + 3, 0 },
			   (const int[]){ SIGUSR1, 0 });
}

static void on_chld(int sig)
{
}

static void on_other(int sig)
{
	other_runs++;
}

static void install(int sig, void *fn, int flags, const int *mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (flags & SA_SIGINFO)
		sa.sa_sigaction = fn;
	else
		sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (; mask && *mask; mask++)
		sigaddset(&sa.sa_mask, *mask);
	if (sigaction(sig, &sa, NULL))
		case_die("sigaction(%d): %m", sig);
}

static void setup(void)
{
	sigset_t block;

	install(SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART, (const int[]){ SIGUSR2, SIGINT, 0 });
	install(SIGUSR2, on_usr2, SA_NODEFER, (const int[]){ SIGHUP, 0 });
	install(SIGRTMIN + 3, on_rt, SA_SIGINFO | SA_RESETHAND,
		(const int[]){ SIGALRM, SIGRTMIN + 7, 0 });
	install(SIGCHLD, on_chld, SA_NOCLDSTOP, NULL);
	install(SIGPIPE, SIG_IGN, 0, NULL);
	install(SIGWINCH, SIG_IGN, 0, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 10);
	sigprocmask(SIG_BLOCK, &block, NULL);

	sigprocmask(SIG_BLOCK, NULL, &blocked_before);
	for (int s = 1; s <= NSIG_MAX; s++)
		get_ksig(s, &before[s]);
}

static void sabotage(void)
{
	sigset_t set;

	if (case_sabotage("flags"))
		install(SIGUSR1, on_usr1, SA_SIGINFO, (const int[]){ SIGUSR2, SIGINT, 0 });
	if (case_sabotage("mask"))
		install(SIGUSR1, on_usr1, SA_SIGINFO | SA_RESTART,
			(const int[]){ SIGUSR2, SIGINT, SIGQUIT, 0 });
	if (case_sabotage("handler"))
		install(SIGUSR1, on_other, SA_RESTART, NULL);
	if (case_sabotage("ign"))
		install(SIGPIPE, SIG_DFL, 0, NULL);
	if (case_sabotage("resethand"))
		install(SIGRTMIN + 3, on_rt, SA_SIGINFO, (const int[]){ SIGALRM, SIGRTMIN + 7, 0 });
	if (case_sabotage("blocked")) {
		sigemptyset(&set);
		sigaddset(&set, SIGRTMIN + 10);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
	}
}

/* Field by field; returns false if signal sig's disposition differs. */
static bool compare(int sig)
{
	struct ksigaction now;
	const struct ksigaction *was = &before[sig];
	bool same = true;

	get_ksig(sig, &now);
#define field(cond, ...) do { if (!(cond)) { case_fail(__VA_ARGS__); same = false; } } while (0)
	field(now.handler == was->handler, "signal %d: handler %p, want %p", sig, now.handler,
	      was->handler);
	field(now.flags == was->flags, "signal %d: flags %#lx, want %#lx", sig, now.flags,
	      was->flags);
	field(now.restorer == was->restorer, "signal %d: restorer %p, want %p", sig, now.restorer,
	      was->restorer);
	field(now.mask == was->mask, "signal %d: sa_mask %#llx, want %#llx", sig,
	      (unsigned long long)now.mask, (unsigned long long)was->mask);
#undef field
	return same;
}

static void run_handlers(bool pipe_ignored)
{
	union sigval v = { .sival_int = 77 };
	sigset_t set, pending;
	struct ksigaction now;

	raise(SIGUSR1);
	case_check(usr1_runs == 1, "SIGUSR1: handler ran %d times, want 1", usr1_runs);

	raise(SIGUSR2);
	sigpending(&pending);
	case_check(usr2_runs == 0 && sigismember(&pending, SIGUSR2),
		   "SIGUSR2: not held pending while blocked");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	case_check(usr2_runs == 1, "SIGUSR2: handler ran %d times after unblocking, want 1",
		   usr2_runs);
	sigprocmask(SIG_BLOCK, &set, NULL);

	sigqueue(getpid(), SIGRTMIN + 3, v);
	case_check(rt_runs == 1, "SIGRTMIN+3: handler ran %d times, want 1", rt_runs);
	get_ksig(SIGRTMIN + 3, &now);
	case_check(now.handler == SIG_DFL, "SIGRTMIN+3: SA_RESETHAND did not reset the handler");

	if (pipe_ignored)
		raise(SIGPIPE);	/* ignored: nothing happens; SIG_DFL would kill us */
	case_check(other_runs == 0, "a wrong handler ran %d times", other_runs);
}

int main(int argc, char **argv)
{
	sigset_t blocked;
	bool pipe_ok = true;

	case_init(argc, argv);
	setup();
	case_ready_wait();

	sabotage();
	for (int s = 1; s <= NSIG_MAX; s++)
		if (s != SIGKILL && s != SIGSTOP && !compare(s) && s == SIGPIPE)
			pipe_ok = false;
	sigprocmask(SIG_BLOCK, NULL, &blocked);
	for (int s = 1; s <= NSIG_MAX; s++)
		case_check(sigismember(&blocked, s) == sigismember(&blocked_before, s),
			   "signal %d is %sblocked, want %sblocked", s,
			   sigismember(&blocked, s) ? "" : "not ",
			   sigismember(&blocked_before, s) ? "" : "not ");
	run_handlers(pipe_ok);
	case_finish();
}
