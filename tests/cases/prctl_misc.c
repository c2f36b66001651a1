/*
 * prctl_misc: the child subreaper flag, THP disabling, the dumpable flag and per-thread
 * parent-death signals survive a checkpoint, and do their work afterwards.
 *
 *   root        PR_SET_CHILD_SUBREAPER 1, PR_SET_THP_DISABLE 1 with
 *               PR_THP_DISABLE_EXCEPT_ADVISED (plain 1 before Linux 6.18)
 *   middle      THP enabled again (it inherited the root's flag)
 *   grandchild  not dumpable; pdeathsig SIGUSR1 on its main thread, SIGUSR2 on its worker
 *
 * After SIGTERM the root ends the middle process: the grandchild must get both parent-death
 * signals and be adopted by the root (its subreaper), which then collects its exit status.
 */
#include <pthread.h>
#include <sys/prctl.h>

#include "case.h"

#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif

static volatile sig_atomic_t got_usr1, got_usr2, worker_go;
static int root_thp;

static void on_pdeath(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_usr2 = 1;
}

static void check_prctl(const char *who, const char *what, int op, int want)
{
	/* PR_GET_DUMPABLE and PR_GET_THP_DISABLE return the value, the others store it. */
	bool returns = op == PR_GET_DUMPABLE || op == PR_GET_THP_DISABLE;
	int val = 0;
	long ret = prctl(op, returns ? NULL : &val, 0, 0, 0);

	if (returns)
		val = (int)ret;
	case_check(ret >= 0 && val == want, "%s: %s is %d, want %d", who, what, val, want);
}

static void *gc_worker(void *arg)
{
	case_block_term(NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
		case_die("PR_SET_PDEATHSIG: %m");
	*(volatile int *)arg = 1;
	while (!worker_go)
		case_sleep_ms(10);
	if (case_sabotage("worker-pdeathsig"))
		prctl(PR_SET_PDEATHSIG, 0);
	check_prctl("grandchild worker", "pdeathsig", PR_GET_PDEATHSIG, SIGUSR2);
	return NULL;
}

static void wait_pdeath(void)
{
	for (int t = 0; (!got_usr1 || !got_usr2) && t < 2000; t += 5)
		case_sleep_ms(5);
	case_check(got_usr1, "grandchild: no SIGUSR1 when its parent died");
	case_check(got_usr2, "grandchild: no SIGUSR2 (its worker's pdeathsig) when its parent died");
}

static __attribute__((noreturn)) void grandchild(int ready_fd, pid_t root)
{
	struct sigaction sa = { .sa_handler = on_pdeath, .sa_flags = SA_RESTART };
	volatile int started = 0;
	pthread_t th;
	pid_t me;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL))
		case_die("sigaction: %m");
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1) || prctl(PR_SET_DUMPABLE, 0))
		case_die("prctl: %m");
	if (pthread_create(&th, NULL, gc_worker, (void *)&started))
		case_die("pthread_create");
	while (!started)
		case_sleep_ms(5);
	me = getpid();
	if (write(ready_fd, &me, sizeof(me)) != sizeof(me))
		case_die("write: %m");
	case_wait();

	if (case_sabotage("dumpable"))
		prctl(PR_SET_DUMPABLE, 1);
	wait_pdeath();
	check_prctl("grandchild", "pdeathsig", PR_GET_PDEATHSIG, SIGUSR1);
	check_prctl("grandchild", "dumpable", PR_GET_DUMPABLE, 0);
	case_check(getppid() == root, "grandchild: parent %d, want %d (the subreaper)", getppid(), root);
	worker_go = 1;
	pthread_join(th, NULL);
	case_child_exit();
}

/* Middle process: THP back on, one child; ends at SIGTERM and so orphans the grandchild. */
static __attribute__((noreturn)) void middle(int ready_fd, pid_t root)
{
	if (prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0))
		case_die("PR_SET_THP_DISABLE 0: %m");
	if (case_fork() == 0)
		grandchild(ready_fd, root);
	case_wait();
	check_prctl("middle", "THP disable", PR_GET_THP_DISABLE, 0);
	case_child_exit();
}

static void set_root(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		case_die("PR_SET_CHILD_SUBREAPER: %m");
	root_thp = 1 | PR_THP_DISABLE_EXCEPT_ADVISED;
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0)) {
		root_thp = 1;
		if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
			case_die("PR_SET_THP_DISABLE: %m");
	}
}

/* The grandchild must now be ours: its exit status comes to us. */
static void collect_grandchild(pid_t gc)
{
	int status;

	if (waitpid(gc, &status, WNOHANG) < 0 && errno == ECHILD) {
		case_fail("grandchild %d was not adopted by its subreaper", gc);
		kill(gc, SIGTERM);
		return;
	}
	case_check_child(gc, "grandchild");
}

int main(int argc, char **argv)
{
	pid_t mid, gc;
	int fds[2];

	case_init(argc, argv);
	set_root();
	if (pipe(fds))
		case_die("pipe: %m");
	mid = case_fork();
	if (mid == 0)
		middle(fds[1], getppid());
	if (read(fds[0], &gc, sizeof(gc)) != sizeof(gc))
		case_die("the grandchild did not start");
	case_ready_wait();

	if (case_sabotage("subreaper"))
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	if (case_sabotage("thp"))
		prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
	check_prctl("root", "child subreaper", PR_GET_CHILD_SUBREAPER, 1);
	check_prctl("root", "THP disable", PR_GET_THP_DISABLE, root_thp);
	check_prctl("root", "dumpable", PR_GET_DUMPABLE, 1);
	case_check_child(mid, "middle");
	collect_grandchild(gc);
	case_finish();
}
