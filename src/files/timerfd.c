/*
 * "timerfd": a timerfd_create(2) timer: its clock, its next expiry and period, how it was set
 * (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET) and the expirations not read yet ("ticks").
 *
 * Dump: /proc/PID/fdinfo (timerfd_show() in fs/timerfd.c, since 3.17) shows all of it, but
 * not always consistently:
 *  - it_value is clamped to 0 once the timer has expired, and a periodic timer is moved on to
 *    its next period only lazily, by the next read(2) or timerfd_gettime(2); until then
 *    "ticks" counts one expiry however many periods have passed;
 *  - ticks is read outside the lock that guards it_value, so an expiry can fall in between.
 * So timerfd_gettime(2) on our copy of the description is called after each fdinfo reading:
 * it moves an expired periodic timer on (adding the missed periods to ticks), which is what
 * the target's own next read or timerfd_gettime would do, so nothing the target can observe
 * changes. The two are read again until they agree.
 *
 * Restore: timerfd_settime(2) with the same flags; a relative timer continues with the time
 * it had left at dump (time spent checkpointed does not count, as with CRIU), an absolute one
 * keeps its absolute expiry. Unread ticks come back with ioctl(TFD_IOC_SET_TICKS), which
 * exists only with CONFIG_CHECKPOINT_RESTORE.
 *
 * Not saved: the "canceled" state of a TFD_TIMER_CANCEL_ON_SET timer whose clock was set and
 * that was not read since (read(2) would fail with ECANCELED): no interface shows it.
 */
#define LOG_PREFIX "files/timerfd: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "timerfd.pb-c.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

/* How often fdinfo and timerfd_gettime are read again before settling for what they say. */
#define SNAPSHOT_TRIES 100

/* One reading of the timer. value: time left (0: disarmed or expired). */
struct tfd_state {
	int clockid;
	unsigned int settime_flags;
	uint64_t ticks;
	struct timespec value, interval;
};

static bool timerfd_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:[timerfd]");
}

/* "(%llu, %llu)": tv_sec, tv_nsec. */
static int parse_timespec(const char *p, struct timespec *ts)
{
	unsigned long long sec, nsec;

	if (!p || sscanf(p, " (%llu, %llu)", &sec, &nsec) != 2 || nsec >= 1000000000)
		return -EINVAL;
	ts->tv_sec = sec;
	ts->tv_nsec = nsec;
	return 0;
}

static int parse_fdinfo(const char *text, struct tfd_state *st)
{
	const char *clk = fdinfo_value(text, "\nclockid:");
	const char *ticks = fdinfo_value(text, "\nticks:");
	const char *flags = fdinfo_value(text, "\nsettime flags:");

	if (!clk || !ticks || !flags)
		return -EINVAL;
	st->clockid = strtol(clk, NULL, 10);
	st->ticks = strtoull(ticks, NULL, 10);
	st->settime_flags = strtoul(flags, NULL, 8);
	if (parse_timespec(fdinfo_value(text, "\nit_value:"), &st->value) ||
	    parse_timespec(fdinfo_value(text, "\nit_interval:"), &st->interval))
		return -EINVAL;
	return 0;
}

static bool ts_zero(const struct timespec *t)
{
	return !t->tv_sec && !t->tv_nsec;
}

static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/*
 * fdinfo and the timerfd_gettime after it agree when the time left did not grow (it grows when
 * a periodic timer had expired and gettime moved it on, adding to ticks after fdinfo showed
 * them) and did not drop to 0 (a one-shot timer fired in between, perhaps after fdinfo read
 * ticks).
 */
static bool agrees(const struct tfd_state *st, const struct itimerspec *cur)
{
	if (ts_zero(&st->value))
		return ts_zero(&cur->it_value);
	return !ts_zero(&cur->it_value) && ts_le(&cur->it_value, &st->value);
}

/*
 * A time left of 0, unless on a one-shot timer that has fired (ticks), means disarmed, or
 * armed and due but not fired yet: hrtimers run from an interrupt a moment after they are
 * due. One more reading a millisecond later tells the two apart.
 */
static bool maybe_due(const struct tfd_state *st)
{
	return ts_zero(&st->value) && (!st->ticks || !ts_zero(&st->interval));
}

static char *read_fdinfo(const struct fd_dump_arg *a)
{
	char path[64];
	char *text;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", a->pid, a->fd);
	text = read_file_at(AT_FDCWD, path, NULL);
	if (!text)
		pr_perror("pid %d fd %d: cannot read %s", a->pid, a->fd, path);
	return text;
}

/* One reading of fdinfo (a->fdinfo the first time) and timerfd_gettime after it. */
static int read_state(const struct fd_dump_arg *a, int try, struct tfd_state *st,
		      struct itimerspec *cur)
{
	_cleanup_free_ char *text = try ? read_fdinfo(a) : NULL;
	int err;

	if (try && !text)
		return -errno;
	err = parse_fdinfo(try ? text : a->fdinfo, st);
	if (err) {
		pr_err("pid %d fd %d: timerfd: unreadable fdinfo (clockid, ticks, settime flags, it_value, it_interval)",
		       a->pid, a->fd);
		return err;
	}
	if (timerfd_gettime(a->lfd, cur))
		return pr_errno(-errno, "pid %d fd %d: timerfd_gettime failed", a->pid, a->fd);
	return 0;
}

/* A consistent reading of the timer (see the top of this file). */
static int snapshot(const struct fd_dump_arg *a, struct tfd_state *st)
{
	struct itimerspec cur;
	bool waited = false;
	int err;

	if (a->lfd < 0) {
		pr_err("pid %d fd %d: timerfd: no copy of the descriptor to read the timer with", a->pid, a->fd);
		return -EBADF;
	}
	for (int try = 0; try < SNAPSHOT_TRIES; try++) {
		err = read_state(a, try, st, &cur);
		if (err)
			return err;
		if (!agrees(st, &cur))
			continue;
		if (!maybe_due(st) || waited)
			return 0;
		waited = true;
		usleep(1000);
	}
	/* A timer whose period is shorter than one reading: take the latest time left. */
	pr_warn("pid %d fd %d: timerfd fires faster than it can be read: its ticks may be off by one",
		a->pid, a->fd);
	st->value = cur.it_value;
	return 0;
}

/* For TFD_TIMER_ABSTIME: the absolute expiry on the timer's clock, now + time left. */
static int to_absolute(const struct fd_dump_arg *a, struct tfd_state *st)
{
	struct timespec now;

	if (ts_zero(&st->value) || !(st->settime_flags & TFD_TIMER_ABSTIME))
		return 0;
	if (clock_gettime(st->clockid, &now))
		return pr_errno(-errno, "pid %d fd %d: timerfd: cannot read clock %d", a->pid, a->fd,
				st->clockid);
	st->value.tv_sec += now.tv_sec;
	st->value.tv_nsec += now.tv_nsec;
	if (st->value.tv_nsec >= 1000000000) {
		st->value.tv_sec++;
		st->value.tv_nsec -= 1000000000;
	}
	return 0;
}

static int timerfd_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct tfd_state st;
	TimerfdFile *tf;
	int err;

	err = snapshot(a, &st);
	if (!err)
		err = to_absolute(a, &st);
	if (err)
		return err;
	tf = xmalloc(sizeof(*tf));
	if (!tf)
		return -ENOMEM;
	timerfd_file__init(tf);
	tf->flags = a->flags;
	tf->clockid = st.clockid;
	tf->settime_flags = st.settime_flags;
	tf->ticks = st.ticks;
	tf->value_sec = st.value.tv_sec;
	tf->value_nsec = st.value.tv_nsec;
	tf->interval_sec = st.interval.tv_sec;
	tf->interval_nsec = st.interval.tv_nsec;
	*ret = &tf->base;
	return 0;
}

/*
 * timerfd_settime() zeroes ticks, so they are set after it. A timer due at once (an absolute
 * time already past) may fire before the ioctl: read what it counted (the descriptor is still
 * O_NONBLOCK here) and add it, rather than overwrite it.
 */
static int restore_ticks(const struct fd_open_arg *a, int fd, uint64_t ticks)
{
	uint64_t fired = 0;

	if (!ticks)
		return 0;
	if (read(fd, &fired, sizeof(fired)) != (ssize_t)sizeof(fired))
		fired = 0;
	ticks += fired;
	if (ioctl(fd, TFD_IOC_SET_TICKS, &ticks)) {
		if (errno == ENOTTY)
			pr_err("pid %d: the timerfd had %llu unread expirations, and this kernel cannot set them (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE)",
			       a->pid, (unsigned long long)ticks);
		else
			pr_perror("pid %d: cannot set %llu timerfd ticks", a->pid, (unsigned long long)ticks);
		return -errno;
	}
	return 0;
}

static int arm(const struct fd_open_arg *a, int fd, const TimerfdFile *tf)
{
	struct itimerspec its = {
		.it_interval = { tf->interval_sec, tf->interval_nsec },
		.it_value = { tf->value_sec, tf->value_nsec },
	};

	/* Called even when disarmed: it also keeps the period and the settime flags. */
	if (timerfd_settime(fd, tf->settime_flags, &its, NULL))
		return pr_errno(-errno, "pid %d: cannot set timerfd (clock %d, flags %#o) to %lld.%09u every %lld.%09u",
				a->pid, tf->clockid, tf->settime_flags, (long long)tf->value_sec,
				tf->value_nsec, (long long)tf->interval_sec, tf->interval_nsec);
	return 0;
}

static int timerfd_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const TimerfdFile *tf = (const TimerfdFile *)rec;
	int fd = timerfd_create(tf->clockid, TFD_CLOEXEC | TFD_NONBLOCK), err;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create a timerfd on clock %d", a->pid, tf->clockid);
	err = arm(a, fd, tf);
	if (!err)
		err = restore_ticks(a, fd, tf->ticks);
	if (!err && fcntl(fd, F_SETFL, tf->flags & ~O_ACCMODE) < 0)
		err = pr_errno(-errno, "pid %d: cannot set timerfd flags %#o", a->pid, tf->flags);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_timerfd = {
	.name = "timerfd",
	.desc = &timerfd_file__descriptor,
	.match = timerfd_match,
	.dump = timerfd_dump,
	.open = timerfd_open,
};
