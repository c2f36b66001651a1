/*
 * itimers: the three interval timers keep their time left and their intervals.
 *
 *   ITIMER_REAL     3 s, then every 0.45 s
 *   ITIMER_VIRTUAL  0.5 s of user CPU time (0.3 s of it spent before ready), then every 0.1 s
 *   ITIMER_PROF     0.9 s of CPU time, then every 0.15 s
 *
 * The CPU timers stand still while the case sleeps, so after a restore their time left must
 * be what it was at ready: a lost timer reads 0, one armed again from scratch reads more.
 * ITIMER_REAL runs on in wall time: it must have less left than at ready (or, once it has
 * fired, no more than its interval). Then each must really fire, first after the time it had
 * left and again after its interval.
 */
#include <sys/time.h>

#include "case.h"

#define MS 1000LL
#define SEC 1000000LL

static const struct {
	int which, sig;
	const char *name;
	long long value_us, interval_us;
} timers[3] = {
	{ ITIMER_REAL, SIGALRM, "ITIMER_REAL", 3 * SEC, 450 * MS },
	{ ITIMER_VIRTUAL, SIGVTALRM, "ITIMER_VIRTUAL", 500 * MS, 100 * MS },
	{ ITIMER_PROF, SIGPROF, "ITIMER_PROF", 900 * MS, 150 * MS },
};

/* Per timer: signals seen, and the process CPU time (ns) at the first two of them. */
static volatile sig_atomic_t fired[3];
static volatile int64_t fired_cpu[3][2];

static int timer_of(int sig)
{
	for (int i = 0; i < 3; i++)
		if (timers[i].sig == sig)
			return i;
	return 0;
}

static void on_timer(int sig)
{
	int i = timer_of(sig);

	if (fired[i] < 2)
		fired_cpu[i][fired[i]] = case_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	fired[i]++;
}

static long long tv_us(const struct timeval *tv)
{
	return tv->tv_sec * SEC + tv->tv_usec;
}

static struct timeval us_tv(long long us)
{
	return (struct timeval){ us / SEC, us % SEC };
}

/* Spins in user mode until CPU time reaches until_ns or cond() holds. */
static void burn_cpu(int64_t until_ns, bool (*cond)(void))
{
	volatile unsigned long x = 0;

	while (case_now_ns(CLOCK_PROCESS_CPUTIME_ID) < until_ns && !(cond && cond()))
		for (int i = 0; i < 10000; i++)
			x += i;
}

static void setup(void)
{
	struct sigaction sa = { .sa_handler = on_timer, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++) {
		struct itimerval val = { us_tv(timers[i].interval_us), us_tv(timers[i].value_us) };

		if (sigaction(timers[i].sig, &sa, NULL))
			case_die("sigaction(%d): %m", timers[i].sig);
		if (setitimer(timers[i].which, &val, NULL))
			case_die("setitimer(%s): %m", timers[i].name);
	}
	burn_cpu(case_now_ns(CLOCK_PROCESS_CPUTIME_ID) + 300 * 1000000LL, NULL);
	case_sleep_ms(500);
}

/* ITIMER_REAL: less left than at ready, or at most its interval once it has fired since. */
static void check_real(const struct itimerval *want, int fired_before)
{
	int seen = fired[0];
	struct itimerval now;
	long long left, limit;

	getitimer(ITIMER_REAL, &now);
	left = tv_us(&now.it_value);
	limit = seen == fired_before ? tv_us(&want->it_value) : timers[0].interval_us;
	case_check(tv_us(&now.it_interval) == timers[0].interval_us,
		   "ITIMER_REAL: interval %lld us, want %lld us", tv_us(&now.it_interval),
		   timers[0].interval_us);
	case_check(left > 0 && left <= limit, "ITIMER_REAL: %lld us left, want 1..%lld us", left, limit);
}

/*
 * A CPU timer: what was left at ready, less the little CPU time spent since. The kernel
 * counts these timers in scheduler ticks (utime and stime), so a reading may be a tick or two
 * off either way; one armed again from scratch would be hundreds of ms off.
 */
static void check_cpu(int i, const struct itimerval *want)
{
	long long left, was = tv_us(&want->it_value);
	struct itimerval now;

	getitimer(timers[i].which, &now);
	left = tv_us(&now.it_value);
	case_check(tv_us(&now.it_interval) == timers[i].interval_us, "%s: interval %lld us, want %lld us",
		   timers[i].name, tv_us(&now.it_interval), timers[i].interval_us);
	case_check(left > 0 && left <= was + 25 * MS && left >= was - 50 * MS,
		   "%s: %lld us left, want about %lld us (what was left at ready)", timers[i].name,
		   left, was);
}

static bool cpu_timers_fired_twice(void)
{
	return fired[1] >= 2 && fired[2] >= 2;
}

/* Whether us is roughly want: tick-counted CPU timers and precise CPU clocks disagree. */
static bool about(long long us, long long want)
{
	return us >= want / 2 && us <= want * 3 / 2 + 50 * MS;
}

/* The CPU timers fire after the CPU time they had left, then after their intervals. */
static void check_cpu_firing(const struct itimerval *want)
{
	int64_t start = case_now_ns(CLOCK_PROCESS_CPUTIME_ID);

	fired[1] = fired[2] = 0;
	burn_cpu(start + 3000 * 1000000LL, cpu_timers_fired_twice);
	for (int i = 1; i < 3; i++) {
		long long first = (fired_cpu[i][0] - start) / 1000, period;

		if (fired[i] < 2) {
			case_fail("%s: fired %d times in 3 s of CPU time, want 2", timers[i].name,
				  (int)fired[i]);
			continue;
		}
		period = (fired_cpu[i][1] - fired_cpu[i][0]) / 1000;
		case_check(about(first, tv_us(&want[i].it_value)),
			   "%s: first fired after %lld us of CPU time, want about %lld us", timers[i].name,
			   first, tv_us(&want[i].it_value));
		case_check(about(period, timers[i].interval_us),
			   "%s: fired again after %lld us of CPU time, want about %lld us", timers[i].name,
			   period, timers[i].interval_us);
	}
}

/* Waits (wall time) until SIGALRM has come count more times; false after timeout_ms. */
static bool wait_alarms(int count, int timeout_ms)
{
	int target = fired[0] + count;

	for (int t = 0; fired[0] < target && t < timeout_ms; t += 5)
		case_sleep_ms(5);
	return fired[0] >= target;
}

int main(int argc, char **argv)
{
	struct itimerval want[3];
	int fired_before;

	case_init(argc, argv);
	setup();
	for (int i = 0; i < 3; i++)
		getitimer(timers[i].which, &want[i]);
	fired_before = fired[0];
	case_ready_wait();

	if (case_sabotage("real-reset"))
		setitimer(ITIMER_REAL, &(struct itimerval){ us_tv(450 * MS), us_tv(3 * SEC) }, NULL);
	if (case_sabotage("virtual-lost"))
		setitimer(ITIMER_VIRTUAL, &(struct itimerval){ { 0, 0 }, { 0, 0 } }, NULL);
	if (case_sabotage("prof-interval"))
		setitimer(ITIMER_PROF, &(struct itimerval){ us_tv(200 * MS), want[2].it_value }, NULL);
	check_real(&want[0], fired_before);
	check_cpu(1, &want[1]);
	check_cpu(2, &want[2]);
	check_cpu_firing(want);
	case_check(wait_alarms(1, 3500), "ITIMER_REAL: no SIGALRM within 3.5 s");
	case_check(wait_alarms(1, 1000), "ITIMER_REAL: no second SIGALRM within 1 s of the first");
	case_finish();
}
