/*
 * timerfd: timers come back on their clock, with their time left, period, settime flags,
 * unread expirations, status and fd flags.
 *
 *   30   CLOCK_MONOTONIC, relative, 60 s then every 7 s, O_NONBLOCK; 35 is a dup of it
 *   31   CLOCK_REALTIME, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, at now + 3600 s: must keep
 *        its absolute expiry (a relative restore would move it by the time spent dumped)
 *   32   CLOCK_BOOTTIME, one-shot that fired, then TFD_IOC_SET_TICKS 5: 5 unread expirations
 *   33   CLOCK_MONOTONIC, fired after 1 ms, every 200 ms, FD_CLOEXEC: expired and not yet moved
 *        on to its next period when dumped; must still tick afterwards
 *   34   CLOCK_REALTIME, disarmed but with a period of 5 s kept, O_NONBLOCK
 */
#include "case.h"

#include <linux/kcmp.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>

#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#define NS 1000000000LL

struct tfd {
	int fd;
	clockid_t clock;
	int flags;		/* timerfd_create flags */
	int settime_flags;
	int64_t value_ns, interval_ns;
	int fl, fdfl;		/* F_GETFL, F_GETFD at setup */
};

static struct tfd tfds[] = {
	{ 30, CLOCK_MONOTONIC, TFD_NONBLOCK, 0, 60 * NS, 7 * NS },
	{ 31, CLOCK_REALTIME, 0, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, 3600 * NS, 0 },
	{ 32, CLOCK_BOOTTIME, 0, 0, 1000, 0 },
	{ 33, CLOCK_MONOTONIC, TFD_CLOEXEC, 0, 1000000, 200000000 },
	{ 34, CLOCK_REALTIME, TFD_NONBLOCK, 0, 0, 5 * NS },
};
#define NTFDS (sizeof(tfds) / sizeof(tfds[0]))

static int64_t armed_at;	/* CLOCK_MONOTONIC when fd 30 was set */
static int64_t abs_expiry;	/* CLOCK_REALTIME expiry of fd 31 */
static uint64_t ticks32;	/* unread expirations of fd 32 */

static struct timespec ts_of(int64_t ns)
{
	return (struct timespec){ ns / NS, ns % NS };
}

static int64_t ns_of(const struct timespec *ts)
{
	return ts->tv_sec * NS + ts->tv_nsec;
}

static void make_tfd(struct tfd *t)
{
	struct itimerspec its = { ts_of(t->interval_ns), ts_of(t->value_ns) };
	int fd = timerfd_create(t->clock, t->flags);

	if (fd < 0)
		case_die("timerfd_create(%d): %m", t->clock);
	if (t->settime_flags & TFD_TIMER_ABSTIME) {
		abs_expiry = case_now_ns(t->clock) + t->value_ns;
		its.it_value = ts_of(abs_expiry);
	}
	if (t->fd == 30)
		armed_at = case_now_ns(CLOCK_MONOTONIC);
	if (timerfd_settime(fd, t->settime_flags, &its, NULL))
		case_die("timerfd_settime: %m");
	case_move_fd(fd, t->fd, t->flags & TFD_CLOEXEC);
}

static void setup(void)
{
	uint64_t five = 5;

	for (size_t i = 0; i < NTFDS; i++)
		make_tfd(&tfds[i]);
	if (dup2(30, 35) != 35)
		case_die("dup2: %m");
	case_sleep_ms(20);	/* fds 32 and 33 fire */
	ticks32 = 1;
	if (!ioctl(32, TFD_IOC_SET_TICKS, &five))
		ticks32 = 5;
	else
		case_say("note: TFD_IOC_SET_TICKS: %m: fd 32 keeps 1 tick");
	for (size_t i = 0; i < NTFDS; i++) {
		tfds[i].fl = fcntl(tfds[i].fd, F_GETFL);
		tfds[i].fdfl = fcntl(tfds[i].fd, F_GETFD);
	}
}

/* What every timer must keep: kind, flags, clock, settime flags and period. */
static void check_common(const struct tfd *t)
{
	char got[64];
	struct itimerspec cur;

	case_check_anon_fd(t->fd, "timerfd", t->fl, t->fdfl);
	case_fdinfo_field(t->fd, "clockid:", got, sizeof(got));
	case_check(got[0] && atoi(got) == t->clock, "fd %d: clockid %s, want %d", t->fd, got, t->clock);
	case_fdinfo_field(t->fd, "settime flags:", got, sizeof(got));
	case_check(got[0] && (int)strtol(got, NULL, 8) == t->settime_flags,
		   "fd %d: settime flags %s, want 0%o", t->fd, got, t->settime_flags);
	if (timerfd_gettime(t->fd, &cur)) {
		case_fail("fd %d: timerfd_gettime: %m", t->fd);
		return;
	}
	case_check(ns_of(&cur.it_interval) == t->interval_ns, "fd %d: period %lld ns, want %lld",
		   t->fd, (long long)ns_of(&cur.it_interval), (long long)t->interval_ns);
}

static int64_t time_left(int fd)
{
	struct itimerspec cur = { 0 };

	timerfd_gettime(fd, &cur);
	return ns_of(&cur.it_value);
}

/* Reads fd without blocking: the expirations, 0 if none. */
static uint64_t read_ticks(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	uint64_t v = 0;

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	fcntl(fd, F_SETFL, fl);
	return v;
}

static void check_relative(void)
{
	int64_t left = time_left(30), ran = case_now_ns(CLOCK_MONOTONIC) - armed_at;

	/* time spent dumped does not count: at most 60 s left, at least 60 s minus all that passed */
	case_check(left > 0 && left <= 60 * NS && left >= 60 * NS - ran - NS / 100,
		   "fd 30: %lld ns left, want between %lld and 60 s", (long long)left,
		   (long long)(60 * NS - ran));
	case_check(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 30, 35) == 0,
		   "fds 30 and 35 no longer share one timer");
}

static void check_absolute(void)
{
	int64_t left = time_left(31), now = case_now_ns(CLOCK_REALTIME);
	int64_t off = now + left - abs_expiry;

	case_check(off > -NS / 100 && off < NS / 100,
		   "fd 31: absolute timer now expires %lld ns away from where it was set",
		   (long long)off);
}

static void check_fired(void)
{
	char got[64];
	int64_t left = time_left(33);

	case_fdinfo_field(32, "ticks:", got, sizeof(got));
	case_check(strtoull(got, NULL, 10) == ticks32, "fd 32: ticks %s, want %llu", got,
		   (unsigned long long)ticks32);
	case_check(time_left(32) == 0, "fd 32: a one-shot timer that fired is armed again");
	case_check(read_ticks(32) == ticks32, "fd 32: did not read %llu expirations",
		   (unsigned long long)ticks32);
	case_check(left > 0 && left <= 200000000, "fd 33: %lld ns left, want (0, 200 ms]",
		   (long long)left);
	case_check(read_ticks(33) >= 1, "fd 33: its expiration was lost");
	case_check(case_poll(33, POLLIN, 1000), "fd 33: the periodic timer does not fire any more");
	case_check(time_left(34) == 0, "fd 34: a disarmed timer is armed");
}

static void sabotage(void)
{
	struct itimerspec off = { { 0, 0 }, { 0, 0 } }, rel = { { 0, 0 }, { 3600, 0 } };
	uint64_t v;
	int fd;

	if (case_sabotage("disarm"))
		timerfd_settime(30, 0, &off, NULL);
	if (case_sabotage("absolute"))
		timerfd_settime(31, 0, &rel, NULL);
	if (case_sabotage("ticks") && read(32, &v, sizeof(v)) < 0)
		case_fail("sabotage ticks: %m");
	if (case_sabotage("period"))
		timerfd_settime(33, 0, &off, NULL);
	if (case_sabotage("clock")) {
		fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
		dup2(fd, 34);
		close(fd);
	}
	if (case_sabotage("nonblock"))
		fcntl(30, F_SETFL, 0);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NTFDS; i++)
		check_common(&tfds[i]);
	check_relative();
	check_absolute();
	check_fired();
	case_finish();
}
