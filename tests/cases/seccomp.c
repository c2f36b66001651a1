/*
 * seccomp: filter mode (stacked filters, shared across threads by TSYNC, one thread's own)
 * and strict mode survive a checkpoint.
 *
 *   filtered   a child, root without no_new_privs (it installs with CAP_SYS_ADMIN), with
 *              three threads: F1 (getpgid(MAGIC1) fails EPERM), installed before the threads
 *              exist, so inherited; F2 (uname fails ENOSYS), installed with TSYNC across all
 *              three; F3 (getpgid(MAGIC3) fails EXDEV, with SECCOMP_FILTER_FLAG_LOG), in the
 *              third thread only.
 *   strict     a child in strict mode, blocked in read() on a pipe. After the restore the
 *              parent writes a byte; the child echoes it, then calls getpid(), for which
 *              strict mode kills it with SIGKILL: the parent wants exactly that.
 *
 * After the checks of every thread, the third thread installs F4 (getpgid(MAGIC4) fails
 * EDOM) with TSYNC. The kernel accepts it only if the other threads' filters are part of the
 * third thread's chain, the same objects: a restore that gave each thread copies of F1 and F2
 * makes it fail. Then every thread has F1-F4, F3 included.
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/utsname.h>

#include "case.h"

/* Beyond any pid (PID_MAX_LIMIT is 4M): without its filter, getpgid() fails ESRCH. */
#define MAGIC1		0x5ec00001
#define MAGIC3		0x5ec00003
#define MAGIC4		0x5ec00004
#define NTHREADS	3

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
/* Steps, each a count under lock: */
static int f2_done;	/* 1: F2 is everywhere, the third thread may add F3 */
static int set_up;	/* workers set up */
static int go;		/* 1: SIGTERM came, check */
static int checked;	/* threads past their first check */
static int synced;	/* 1: F4 installed with TSYNC */

/*
 * Installs a filter: 0, or with TSYNC the tid of a thread whose chain is not part of the
 * caller's (so it could not take the filter), or -errno.
 */
static long load(struct sock_filter *prog, unsigned short len, unsigned int flags)
{
	struct sock_fprog fprog = { len, prog };
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);

	return r < 0 ? -errno : r;
}

static void setup_load(struct sock_filter *prog, unsigned short len, unsigned int flags)
{
	long r = load(prog, len, flags);

	if (r > 0)
		case_die("seccomp(SECCOMP_SET_MODE_FILTER, %#x): thread %ld refused it", flags, r);
	if (r)
		case_die("seccomp(SECCOMP_SET_MODE_FILTER, %#x): %s", flags, strerror(-r));
}

/* A filter that fails syscall nr with err when its first argument is arg; see load(). */
static long install(int nr, unsigned int arg, int err, unsigned int flags)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};

	return load(prog, sizeof(prog) / sizeof(prog[0]), flags);
}

/* A filter that fails syscall nr with err, whatever its arguments. */
static void install_any(int nr, int err, unsigned int flags)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};

	setup_load(prog, sizeof(prog) / sizeof(prog[0]), flags);
}

static int err_of(long r)
{
	return r < 0 ? errno : 0;
}

static void check_filters(const char *who, int nfilters, bool f3, bool f4)
{
	char buf[4096], want[64];
	struct utsname u;

	case_check(err_of(syscall(SYS_getpgid, MAGIC1)) == EPERM, "%s: F1 lost: getpgid(MAGIC1) gives %s",
		   who, strerror(err_of(syscall(SYS_getpgid, MAGIC1))));
	case_check(err_of(uname(&u)) == ENOSYS, "%s: F2 lost: uname() gives %s", who,
		   strerror(err_of(uname(&u))));
	case_check(err_of(syscall(SYS_getpgid, MAGIC3)) == (f3 ? EXDEV : ESRCH),
		   "%s: getpgid(MAGIC3) gives %s, want %s", who,
		   strerror(err_of(syscall(SYS_getpgid, MAGIC3))), strerror(f3 ? EXDEV : ESRCH));
	case_check(err_of(syscall(SYS_getpgid, MAGIC4)) == (f4 ? EDOM : ESRCH),
		   "%s: getpgid(MAGIC4) gives %s, want %s", who,
		   strerror(err_of(syscall(SYS_getpgid, MAGIC4))), strerror(f4 ? EDOM : ESRCH));
	case_read_file("/proc/thread-self/status", buf, sizeof(buf));
	snprintf(want, sizeof(want), "Seccomp:\t2\nSeccomp_filters:\t%d\n", nfilters);
	case_check(strstr(buf, want) != NULL, "%s: /proc status lacks \"%s\"", who, want);
	case_check(strstr(buf, "NoNewPrivs:\t0\n") != NULL, "%s: no_new_privs is set", who);
}

static void wait_for(int *var, int want)
{
	pthread_mutex_lock(&lock);
	while (*var < want)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void bump(int *var)
{
	pthread_mutex_lock(&lock);
	(*var)++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

/*
 * Thread i (1, 2: workers; 0 is the main thread, which runs the same checks). The third
 * thread (2) adds F3 once F2 is everywhere (TSYNC needs every other thread's chain to be part
 * of the caller's). Once every thread has checked, thread 2 installs F4 with TSYNC, and every
 * thread checks again.
 */
static void *worker(void *arg)
{
	long i = (long)arg;
	char who[16];

	snprintf(who, sizeof(who), "thread %ld", i);
	if (i == 2) {
		wait_for(&f2_done, 1);
		if (install(SYS_getpgid, MAGIC3, EXDEV, SECCOMP_FILTER_FLAG_LOG))
			case_die("%s: cannot install F3", who);
	}
	bump(&set_up);
	wait_for(&go, 1);
	check_filters(who, i == 2 ? 3 : 2, i == 2, false);
	bump(&checked);
	if (i == 2) {
		long r;

		wait_for(&checked, NTHREADS);
		r = install(SYS_getpgid, MAGIC4, EDOM, SECCOMP_FILTER_FLAG_TSYNC);
		case_check(r <= 0, "%s: thread %ld refused F4 (TSYNC): it no longer shares F1 and F2", who, r);
		case_check(r >= 0, "%s: cannot install F4: %s", who, strerror(-r));
		bump(&synced);
	}
	wait_for(&synced, 1);
	check_filters(who, 4, true, true);
	return NULL;
}

/*
 * Threads made with SIGTERM blocked: the signal that starts the checks must reach the thread
 * waiting for it in case_wait(), not a worker that would run the handler and leave it asleep.
 */
static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t term, old;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(th, NULL, fn, arg))
		case_die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void filtered(int ready_fd)
{
	pthread_t th[NTHREADS];

	if (install(SYS_getpgid, MAGIC1, EPERM, 0))
		case_die("cannot install F1");
	for (long i = 1; i < NTHREADS; i++)
		start_thread(&th[i], worker, (void *)i);
	install_any(SYS_uname, ENOSYS, SECCOMP_FILTER_FLAG_TSYNC);
	bump(&f2_done);
	wait_for(&set_up, NTHREADS - 1);
	if (write(ready_fd, "f", 1) != 1)
		case_die("write: %m");
	close(ready_fd);
	case_wait();
	if (case_sabotage("filtered-extra"))
		install(SYS_getpgid, MAGIC1 + 100, EPERM, 0);
	bump(&go);
	worker((void *)0);
	for (long i = 1; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	case_child_exit();
}

/* Strict mode: nothing but read, write, exit and sigreturn from here on. */
static void strict(int in, int out)
{
	char c = 's', echo;

	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
		case_die("PR_SET_SECCOMP strict: %m");
	if (write(out, &c, 1) != 1)
		syscall(SYS_exit, 3);
	while (read(in, &c, 1) != 1)
		;
	echo = c + 1;
	if (write(out, &echo, 1) != 1)
		syscall(SYS_exit, 3);
	/* 'w' is the sabotage: leave as if strict mode were gone, without the forbidden call. */
	if (c != 'w')
		syscall(SYS_getpid);
	syscall(SYS_exit, 0);
}

static void check_strict(pid_t pid, int to, int from)
{
	char c = case_sabotage("strict-lost") ? 'w' : 'x', sent = c;
	int status;

	case_check(write(to, &c, 1) == 1, "strict child: cannot write to it: %m");
	case_check(read(from, &c, 1) == 1 && c == sent + 1, "strict child: no echo");
	if (case_wait_child(pid, 10000, &status)) {
		case_fail("strict child (pid %d): waitpid: %m", pid);
		kill(pid, SIGKILL);
		return;
	}
	if (WIFEXITED(status))
		case_fail("strict child exited %d: strict mode is gone", WEXITSTATUS(status));
	else if (WTERMSIG(status) != SIGKILL)
		case_fail("strict child killed by signal %d, want SIGKILL", WTERMSIG(status));
}

int main(int argc, char **argv)
{
	int to[2], from[2], ready[2];
	pid_t fpid, spid;
	char c;

	case_init(argc, argv);
	if (pipe(to) || pipe(from) || pipe(ready))
		case_die("pipe: %m");
	spid = case_fork();
	if (spid == 0) {
		close(to[1]);
		close(from[0]);
		close(ready[0]);
		close(ready[1]);
		strict(to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	fpid = case_fork();
	if (fpid == 0) {
		close(ready[0]);
		filtered(ready[1]);
	}
	close(ready[1]);
	/* Both children say ready through pipes: the driver waits for the root's line. */
	if (read(from[0], &c, 1) != 1 || c != 's' || read(ready[0], &c, 1) != 1)
		case_die("a child did not get ready");
	close(ready[0]);
	case_ready();
	case_wait();
	check_strict(spid, to[1], from[0]);
	case_check_child(fpid, "filtered child");
	case_finish();
}
