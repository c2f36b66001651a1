/*
 * "itimers": the three interval timers of a process (setitimer(2)): ITIMER_REAL (which
 * alarm() arms too), ITIMER_VIRTUAL and ITIMER_PROF. They live in the signal_struct, so
 * they are process-wide, and a process can only read and arm its own: both directions are
 * remote calls. getitimer() only reads, so a dump that leaves the tree running changes
 * nothing.
 *
 * The time left is saved, not the expiry: a restored timer starts counting again in
 * restore_final, the last moment before the tree runs, as if the tree had stayed frozen
 * while it was on disk. fork() does not pass itimers on, so a restored process starts with
 * all three disarmed and an absent record means exactly that.
 */
#define LOG_PREFIX "task/itimers: "
#include "task/task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include "infect/infect.h"
#include "itimers.pb-c.h"
#include "util/log.h"
#include "util/util.h"

#define NR_ITIMERS 3

static const char *const itimer_names[NR_ITIMERS] = {
	[ITIMER_REAL] = "ITIMER_REAL",
	[ITIMER_VIRTUAL] = "ITIMER_VIRTUAL",
	[ITIMER_PROF] = "ITIMER_PROF",
};

static uint64_t tv_to_us(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

static struct timeval us_to_tv(uint64_t us)
{
	return (struct timeval){ .tv_sec = us / 1000000, .tv_usec = us % 1000000 };
}

/* Runs getitimer(which) or setitimer(which, new, NULL) in pid on the itimerval at addr. */
static int remote_itimer(struct infect_ctl *ctl, pid_t pid, long nr, unsigned int which,
			 uint64_t addr)
{
	long args[6] = { which, (long)addr, 0 }, r;
	int ret = infect_syscall(ctl, nr, args, &r);

	if (ret)
		return ret;
	if (r)
		return pr_errno((int)r, "pid %d: %s(%s) failed", pid,
				nr == SYS_getitimer ? "getitimer" : "setitimer", itimer_names[which]);
	return 0;
}

static int add_entry(Itimers *it, unsigned int which, const struct itimerval *val)
{
	ItimerEntry *e = xmalloc(sizeof(*e));

	if (!e)
		return -ENOMEM;
	itimer_entry__init(e);
	e->which = which;
	e->value_us = tv_to_us(&val->it_value);
	e->interval_us = tv_to_us(&val->it_interval);
	it->timers[it->n_timers++] = e;
	return 0;
}

static int read_itimers(struct infect_ctl *ctl, pid_t pid, Itimers *it)
{
	struct itimerval val;
	uint64_t addr;
	int ret = infect_scratch(ctl, sizeof(val), &addr);

	for (unsigned int which = 0; !ret && which < NR_ITIMERS; which++) {
		ret = remote_itimer(ctl, pid, SYS_getitimer, which, addr);
		if (!ret)
			ret = infect_read(ctl, addr, &val, sizeof(val));
		/* A CPU timer keeps its interval while disarmed: either field makes it worth saving. */
		if (!ret && (timerisset(&val.it_value) || timerisset(&val.it_interval)))
			ret = add_entry(it, which, &val);
	}
	return ret;
}

static int itimers_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	Itimers *it = xmalloc(sizeof(*it));
	int err;

	if (!it)
		return -ENOMEM;
	itimers__init(it);
	it->timers = xzalloc(NR_ITIMERS * sizeof(*it->timers));
	err = it->timers ? read_itimers(ctl, pid, it) : -ENOMEM;
	if (err || !it->n_timers) {
		itimers__free_unpacked(it, NULL);
		return err;
	}
	*ret = &it->base;
	return 0;
}

static int itimers_restore(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *rec)
{
	const Itimers *it = (const Itimers *)rec;
	uint64_t addr;
	int ret = infect_scratch(ctl, sizeof(struct itimerval), &addr);

	for (size_t i = 0; !ret && i < it->n_timers; i++) {
		const ItimerEntry *e = it->timers[i];
		struct itimerval val = {
			.it_interval = us_to_tv(e->interval_us),
			.it_value = us_to_tv(e->value_us),
		};

		if (e->which >= NR_ITIMERS)
			return pr_errno(-EINVAL, "pid %d: the image has an interval timer %u this crest does not know",
					pid, e->which);
		ret = infect_write(ctl, addr, &val, sizeof(val));
		if (!ret)
			ret = remote_itimer(ctl, pid, SYS_setitimer, e->which, addr);
	}
	return ret;
}

const struct task_kind task_kind_itimers = {
	.name = "itimers",
	.desc = &itimers__descriptor,
	.dump = itimers_dump,
	.restore_final = itimers_restore,
};
