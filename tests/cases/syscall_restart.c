/*
 * syscall_restart: threads blocked in system calls at dump time carry on as if nothing happened.
 *
 * Freezing a thread that sleeps in the kernel makes its syscall return -ERESTARTSYS,
 * -ERESTARTNOHAND or -ERESTART_RESTARTBLOCK; the restored thread must either re-enter the call
 * (the first two) or see EINTR (the last: restart_syscall() cannot be carried over), never a
 * made-up return value. One thread per kind of wait, each with SIGTERM blocked so that only the
 * main thread runs the handler:
 *   reader   read() on a pipe that only the SIGTERM handler writes to: must get that message;
 *   sleeper  nanosleep(10 s) in an EINTR-aware loop: must never return 0 early;
 *   absleep  clock_nanosleep(TIMER_ABSTIME, now + 10 s): the same, with the other restart path;
 *   condwait pthread_cond_wait until the main thread broadcasts: must see the data it set;
 *   futex    raw FUTEX_WAIT: must return 0 only when woken, and never EINTR.
 * After SIGTERM the main thread wakes each one and joins it with a timeout.
 */
#include "case.h"

#include <linux/futex.h>
#include <pthread.h>

#define WAKE_MSG "wake-up message from the SIGTERM handler"
#define LONG_SLEEP_S 10

static int wake_pipe[2];
static bool bad_message;		/* sabotage: the handler writes something else */
static volatile int stop;		/* the sleepers' loops end: set before SIGUSR2 */
static volatile int fake_zero;		/* sabotage: a sleeper treats EINTR as a 0 return */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go, shared_data;
static uint32_t futex_word;

static void on_term(void)
{
	static const char other[] = "something else entirely, not the message";

	/* write(2) is async-signal-safe; the message fits PIPE_BUF, so it arrives whole. */
	if (bad_message)
		(void)!write(wake_pipe[1], other, sizeof(other) - 1);
	else
		(void)!write(wake_pipe[1], WAKE_MSG, sizeof(WAKE_MSG) - 1);
}

static void on_usr(int sig)
{
}

static void *reader(void *arg)
{
	char buf[256];
	ssize_t n = read(wake_pipe[0], buf, sizeof(buf));

	if (n < 0)
		case_fail("reader: read() on the pipe failed: %m");
	else if ((size_t)n != sizeof(WAKE_MSG) - 1 || memcmp(buf, WAKE_MSG, (size_t)n))
		case_fail("reader: read() returned %zd bytes \"%.*s\", want \"%s\"", n, (int)n, buf,
			  WAKE_MSG);
	return NULL;
}

/* Checks one return of a sleeper: 0 must come at the deadline, EINTR only early. */
static bool sleep_returned(const char *who, int err, int64_t deadline)
{
	int64_t now = case_now_ns(CLOCK_MONOTONIC);

	if (err == EINTR && fake_zero)
		err = 0;
	if (err == 0) {
		if (now < deadline)
			case_fail("%s: returned 0 %.3f s before its deadline", who,
				  (double)(deadline - now) / 1e9);
		return true;
	}
	if (err != EINTR) {
		case_fail("%s: failed: %s", who, strerror(err));
		return true;
	}
	return stop;	/* a legitimate EINTR: go on sleeping unless told to stop */
}

static void *sleeper(void *arg)
{
	struct timespec req = { LONG_SLEEP_S, 0 }, rem;
	int64_t deadline = case_now_ns(CLOCK_MONOTONIC) + (int64_t)LONG_SLEEP_S * 1000000000;

	for (;;) {
		int err = nanosleep(&req, &rem) ? errno : 0;

		if (sleep_returned("sleeper: nanosleep", err, deadline))
			break;
		if (rem.tv_sec > req.tv_sec || rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000) {
			case_fail("sleeper: nanosleep left %ld.%09ld s of %ld.%09ld s",
				  (long)rem.tv_sec, rem.tv_nsec, (long)req.tv_sec, req.tv_nsec);
			break;
		}
		req = rem;
	}
	return NULL;
}

static void *absleep(void *arg)
{
	struct timespec until;
	int64_t deadline;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += LONG_SLEEP_S;
	deadline = (int64_t)until.tv_sec * 1000000000 + until.tv_nsec;
	while (!sleep_returned("absleep: clock_nanosleep",
			       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL), deadline))
		;
	return NULL;
}

static void *condwait(void *arg)
{
	pthread_mutex_lock(&lock);
	while (!go)
		pthread_cond_wait(&cond, &lock);
	case_check(shared_data == 0x5eed, "condwait: woke with data %#x, want 0x5eed", shared_data);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void *futex_waiter(void *arg)
{
	while (__atomic_load_n(&futex_word, __ATOMIC_SEQ_CST) == 0) {
		long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);

		if (r == 0 && __atomic_load_n(&futex_word, __ATOMIC_SEQ_CST) == 0) {
			case_fail("futex: FUTEX_WAIT returned 0 but nobody woke it");
			break;
		}
		if (r < 0 && errno != EAGAIN) {
			case_fail("futex: FUTEX_WAIT failed: %m");
			break;
		}
	}
	return NULL;
}

static const struct {
	const char *name;
	void *(*fn)(void *);
} threads[] = {
	{ "reader", reader }, { "sleeper", sleeper }, { "absleep", absleep },
	{ "condwait", condwait }, { "futex", futex_waiter },
};
#define NTHREADS (sizeof(threads) / sizeof(threads[0]))

/*
 * Interrupts a sleeper with SIGUSR2 until it has seen `stop`. One signal is not enough: a
 * thread restarting its sleep (after a restore, as after any kernel restart) can take the
 * signal just before it re-enters the call, and then sleeps on; so does any program.
 */
static bool joined[NTHREADS];

static void kick_sleeper(pthread_t *th, int idx)
{
	for (int i = 0; i < 100; i++) {
		if (pthread_kill(th[idx], SIGUSR2))
			return;
		if (pthread_tryjoin_np(th[idx], NULL) == 0) {
			joined[idx] = true;
			return;
		}
		case_sleep_ms(20);
	}
}

static void wake_all(pthread_t *th)
{
	if (case_sabotage("futex_spurious")) {
		/* stands for a restore that makes FUTEX_WAIT return 0: let the waiter see it */
		syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		case_sleep_ms(100);
	}
	if (case_sabotage("read_eintr"))
		pthread_kill(th[0], SIGUSR1);	/* no SA_RESTART: read() gives EINTR */

	pthread_mutex_lock(&lock);
	shared_data = case_sabotage("cond_data") ? 0xbad : 0x5eed;
	go = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);

	__atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);

	/* The sleepers' SIGUSR2 handler does nothing: the syscall just returns EINTR. */
	if (case_sabotage("sleep_zero"))
		fake_zero = 1;	/* stands for a restore that makes nanosleep return 0 */
	else
		stop = 1;
	kick_sleeper(th, 1);
	kick_sleeper(th, 2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th[NTHREADS];
	sigset_t old;
	struct timespec until;

	case_init(argc, argv);
	if (pipe(wake_pipe))
		case_die("pipe: %m");
	/* Decided now: the handler cannot call getenv safely. */
	bad_message = case_sabotage("read_data");
	if (getenv("CASE_SABOTAGE") && !strcmp(getenv("CASE_SABOTAGE"), "read_eintr"))
		wake_pipe[1] = -1;	/* the handler's write fails: only SIGUSR1 ends the read */
	case_term_hook = on_term;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);

	case_block_term(&old);	/* in the threads: they inherit the mask */
	for (size_t i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, threads[i].fn, NULL))
			case_die("pthread_create %s failed", threads[i].name);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Let every thread reach its blocking call before the dump may come. */
	case_sleep_ms(50);
	case_ready_wait();

	wake_all(th);
	for (size_t i = 0; i < NTHREADS; i++) {
		if (joined[i])	/* by kick_sleeper() */
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		if (pthread_timedjoin_np(th[i], NULL, &until)) {
			case_fail("%s: still blocked 5 s after it was woken", threads[i].name);
			/* A stuck thread would keep the process alive: end it with the failure. */
			exit(1);
		}
	}
	case_finish();
}
