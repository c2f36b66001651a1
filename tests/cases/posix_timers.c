/*
 * posix_timers: timers made with timer_create() keep their ids, clocks, notifications,
 * values and intervals, and go on firing at the right thread.
 *
 *   id 0  A  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+1, sival 0xa11ce, 0.7 s then every 0.2 s
 *   id 1     deleted (a gap)
 *   id 2  B  CLOCK_REALTIME, SIGEV_SIGNAL SIGUSR2, sival 0xb0b, once, in an hour
 *   id 3, 4  deleted
 *   id 5  C  CLOCK_MONOTONIC, SIGEV_THREAD_ID to the worker, SIGRTMIN+2, sival 0xc0ffee,
 *            0.3 s then every 0.25 s
 *   id 6  D  CLOCK_BOOTTIME, SIGEV_NONE, 100 s then every 7 s
 *
 * The ids are the kernel's (raw syscalls; glibc's timer_t is the same number for these).
 * After a restore /proc/self/timers must list the same timers, timer_gettime() must give the
 * same intervals and no more time left than at ready, and A and C must fire, C in the worker.
 */
#include <pthread.h>

#include "case.h"

#define MS 1000000LL
#define SEC 1000000000LL

struct ptimer {
	const char *name;
	clockid_t clock;
	int notify, signo;
	long sival;
	long long value_ns, interval_ns;
	int id;			/* the id it got */
};

static struct ptimer timers[] = {
	{ "A", CLOCK_MONOTONIC, SIGEV_SIGNAL, 0, 0xa11ce, 700 * MS, 200 * MS },
	{ "B", CLOCK_REALTIME, SIGEV_SIGNAL, SIGUSR2, 0xb0b, 3600 * SEC, 0 },
	{ "C", CLOCK_MONOTONIC, SIGEV_THREAD_ID, 0, 0xc0ffee, 300 * MS, 250 * MS },
	{ "D", CLOCK_BOOTTIME, SIGEV_NONE, 0, 0, 100 * SEC, 7 * SEC },
};
#define NR_TIMERS (int)(sizeof(timers) / sizeof(timers[0]))

static volatile pid_t worker_tid;
static volatile sig_atomic_t worker_stop;
/* Signals of A and C, and those that came with the wrong si_value, timer or thread. */
static volatile sig_atomic_t fired_a, fired_c, bad_info, wrong_thread;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	const struct ptimer *t = &timers[sig == timers[0].signo ? 0 : 2];

	if (si->si_code != SI_TIMER || si->si_value.sival_ptr != (void *)t->sival ||
	    si->si_timerid != t->id)
		bad_info++;
	if (t == &timers[2] && case_gettid() != worker_tid)
		wrong_thread++;
	if (t == &timers[0])
		fired_a++;
	else
		fired_c++;
}

static void *worker(void *arg)
{
	worker_tid = case_gettid();
	while (!worker_stop)
		case_sleep_ms(10);
	return NULL;
}

static int make_timer(struct ptimer *t)
{
	struct sigevent sev;
	int id;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = t->notify;
	sev.sigev_signo = t->signo;
	sev.sigev_value.sival_ptr = (void *)t->sival;
	sev._sigev_un._tid = worker_tid;
	if (syscall(SYS_timer_create, t->clock, &sev, &id))
		case_die("timer_create(%s): %m", t->name);
	return id;
}

static void spare_timer(void)
{
	int id;

	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &id) || syscall(SYS_timer_delete, id))
		case_die("timer_create/delete of a spare timer: %m");
}

static void arm(const struct ptimer *t)
{
	struct itimerspec its = {
		{ t->interval_ns / SEC, t->interval_ns % SEC }, { t->value_ns / SEC, t->value_ns % SEC },
	};

	if (syscall(SYS_timer_settime, t->id, 0, &its, NULL))
		case_die("timer_settime(%s): %m", t->name);
}

static void setup(void)
{
	struct sigaction sa = { .sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART };
	pthread_t th;

	timers[0].signo = SIGRTMIN + 1;
	timers[2].signo = SIGRTMIN + 2;
	sigemptyset(&sa.sa_mask);
	if (sigaction(timers[0].signo, &sa, NULL) || sigaction(timers[2].signo, &sa, NULL))
		case_die("sigaction: %m");
	if (pthread_create(&th, NULL, worker, NULL))
		case_die("pthread_create");
	while (!worker_tid)
		case_sleep_ms(1);
	timers[0].id = make_timer(&timers[0]);
	spare_timer();
	timers[1].id = make_timer(&timers[1]);
	spare_timer();
	spare_timer();
	for (int i = 2; i < NR_TIMERS; i++)
		timers[i].id = make_timer(&timers[i]);
	for (int i = 0; i < NR_TIMERS; i++)
		arm(&timers[i]);
}

static int cmp_block(const void *a, const void *b)
{
	return atoi(*(char *const *)a + 3) - atoi(*(char *const *)b + 3);
}

/* /proc/self/timers with its blocks ("ID: n" and three lines) by id, not in hash order. */
static void read_timers(char *out, size_t size)
{
	char buf[4096], *blocks[16], *p = buf;
	size_t n = 0, k = 0;

	if (case_read_file("/proc/self/timers", buf, sizeof(buf)) < 0)
		case_die("read /proc/self/timers: %m");
	if (buf[0])
		blocks[n++] = buf;
	while ((p = strstr(p, "\nID:")) && n < 16) {
		*p++ = '\0';
		blocks[n++] = p;
	}
	qsort(blocks, n, sizeof(blocks[0]), cmp_block);
	out[0] = '\0';
	for (size_t i = 0; i < n && k < size; i++)
		k += snprintf(out + k, size - k, "%s%s", blocks[i], i + 1 < n ? "\n" : "");
}

static long long ts_ns(const struct timespec *ts)
{
	return ts->tv_sec * SEC + ts->tv_nsec;
}

/* Same interval; time left in (0, what was left at ready], less only what has passed since. */
static void check_value(const struct ptimer *t, const struct itimerspec *was, long long since_ns)
{
	long long left, was_left = ts_ns(&was->it_value);
	struct itimerspec now;

	if (syscall(SYS_timer_gettime, t->id, &now)) {
		case_fail("timer %s (id %d): timer_gettime: %m", t->name, t->id);
		return;
	}
	left = ts_ns(&now.it_value);
	case_check(ts_ns(&now.it_interval) == t->interval_ns,
		   "timer %s: interval %lld ns, want %lld ns", t->name, ts_ns(&now.it_interval),
		   t->interval_ns);
	if (t->interval_ns) {
		/* Periodic: it may have fired since, then it has at most the interval left. */
		case_check(left > 0 && left <= (was_left > t->interval_ns ? was_left : t->interval_ns),
			   "timer %s: %lld ns left, more than at ready (%lld ns)", t->name, left, was_left);
		return;
	}
	case_check(left > 0 && left <= was_left && left >= was_left - since_ns - SEC,
		   "timer %s: %lld ns left, want about %lld ns less %lld ns passed", t->name, left,
		   was_left, since_ns);
}

static bool wait_fired(volatile sig_atomic_t *count, int more, int timeout_ms)
{
	int target = *count + more;

	for (int t = 0; *count < target && t < timeout_ms; t += 5)
		case_sleep_ms(5);
	return *count >= target;
}

int main(int argc, char **argv)
{
	static char listed[4096], now[4096];
	struct itimerspec was[NR_TIMERS];
	int64_t ready_ns;

	case_init(argc, argv);
	setup();
	for (int i = 0; i < NR_TIMERS; i++)
		syscall(SYS_timer_gettime, timers[i].id, &was[i]);
	read_timers(listed, sizeof(listed));
	ready_ns = case_now_ns(CLOCK_MONOTONIC);
	case_ready_wait();

	if (case_sabotage("delete-b"))
		syscall(SYS_timer_delete, timers[1].id);
	if (case_sabotage("interval-d"))
		syscall(SYS_timer_settime, timers[3].id, 0,
			&(struct itimerspec){ { 8, 0 }, was[3].it_value }, NULL);
	read_timers(now, sizeof(now));
	case_check(!strcmp(listed, now), "/proc/self/timers differs:\n%s\nwant\n%s", now, listed);
	for (int i = 0; i < NR_TIMERS; i++)
		check_value(&timers[i], &was[i], case_now_ns(CLOCK_MONOTONIC) - ready_ns);
	case_check(wait_fired(&fired_a, 2, 2000), "timer A: did not fire twice within 2 s");
	case_check(wait_fired(&fired_c, 2, 2000), "timer C: did not fire twice within 2 s");
	case_check(!bad_info, "%d timer signals came with a wrong si_code, si_value or si_timerid",
		   (int)bad_info);
	case_check(!wrong_thread, "%d signals of timer C came to another thread than the worker",
		   (int)wrong_thread);
	worker_stop = 1;
	case_finish();
}
