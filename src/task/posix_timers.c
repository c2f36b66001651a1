/*
 * "posix_timers": the timers a process made with timer_create(2). They belong to the
 * process (signal_struct) and only the process can read or make them, so the values are
 * read and the timers made again by remote calls; what the kernel alone knows of a timer
 * (clock, notification, target thread) comes from /proc/PID/timers:
 *
 *	ID: 3
 *	signal: 34/00000000deadbeef	(sigev_signo / sigev_value, printed with %px)
 *	notify: signal/tid.1250		(signal|none|thread, with "tid" for SIGEV_THREAD_ID)
 *	ClockID: 1
 *
 * Restore needs the same ids, since the program holds them. Since Linux 6.15
 * prctl(PR_TIMER_CREATE_RESTORE_IDS, ON) makes timer_create() take the id it finds in
 * *timerid; older kernels hand out ids from a per-process counter starting at 0, so there
 * the timers are made by ascending id and every id in a gap is made and deleted again.
 * Both run in restore_final, when every thread exists (a SIGEV_THREAD_ID target must) and
 * as late as possible, so that the time left starts counting when the tree runs.
 *
 * Not restored: the overrun count of the last expiry (timer_getoverrun()), which no call
 * sets; it is saved, warned about, and correct again after the next expiry. A timer armed
 * with TIMER_ABSTIME comes back relative (the kernel does not show the flag), so a clock
 * change after the restore moves it. The counter behind the next new id is not shown either:
 * the next timer_create() gives the highest restored id + 1.
 */
#define LOG_PREFIX "task/posix_timers: "
#include "task/task.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "infect/infect.h"
#include "posix_timers.pb-c.h"
#include "util/kernel-compat.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

/* CPU clock ids (include/linux/posix-timers_types.h): pid in the high bits, bit 2 per-thread. */
#define CPUCLOCK_PERTHREAD_MASK 4
#define CPUCLOCK_PID(clock) (~((clock) >> 3))

/* Without the prctl: at most this many ids made and deleted to fill gaps, per process. */
#define MAX_GAP_FILL 100000

/* What a remote timer call reads or writes, in the scratch area. */
struct timer_scratch {
	struct sigevent sev;
	struct itimerspec its;
	int id;
};

#define SCRATCH_FIELD(base, f) ((base) + offsetof(struct timer_scratch, f))

static int remote(struct infect_ctl *ctl, pid_t pid, long nr, const long args[6], long *r,
		  const char *what, int id)
{
	int ret = infect_syscall(ctl, nr, args, r);

	if (ret)
		return ret;
	if (*r < 0)
		return pr_errno((int)*r, "pid %d: timer %d: %s failed", pid, id, what);
	return 0;
}

/* -------------------------------- dump -------------------------------- */

static PosixTimerEntry *new_entry(PosixTimers *pt, size_t *cap)
{
	PosixTimerEntry *e;

	if (xgrow((void **)&pt->timers, cap, pt->n_timers + 1, sizeof(*pt->timers)))
		return NULL;
	e = xmalloc(sizeof(*e));
	if (!e)
		return NULL;
	posix_timer_entry__init(e);
	pt->timers[pt->n_timers++] = e;
	return e;
}

/* "signal|none|thread" and "pid|tid" of a notify: line, as sigev_notify. */
static int parse_notify(const char *how, const char *whom, int target, PosixTimerEntry *e)
{
	static const char *const names[] = { [SIGEV_SIGNAL] = "signal", [SIGEV_NONE] = "none",
					     [SIGEV_THREAD] = "thread" };

	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(how, names[i]))
			continue;
		e->notify = i;
		if (!strcmp(whom, "tid")) {
			e->notify |= SIGEV_THREAD_ID;
			e->has_tid = true;
			e->tid = target;
		}
		return 0;
	}
	return -EINVAL;
}

static int parse_line(const char *line, PosixTimers *pt, size_t *cap)
{
	PosixTimerEntry *e = pt->n_timers ? pt->timers[pt->n_timers - 1] : NULL;
	char how[16], whom[4];
	unsigned long long sival;
	int id, target;

	if (sscanf(line, "ID: %d", &id) == 1) {
		e = new_entry(pt, cap);
		if (!e)
			return -ENOMEM;
		e->id = id;
		return 0;
	}
	if (!e)
		return -EINVAL;
	if (sscanf(line, "signal: %u/%llx", &e->signo, &sival) == 2) {
		e->sival = sival;
		return 0;
	}
	if (sscanf(line, "notify: %15[a-z]/%3[a-z].%d", how, whom, &target) == 3)
		return parse_notify(how, whom, target, e);
	if (sscanf(line, "ClockID: %d", &e->clock) == 1)
		return 0;
	return -EINVAL;
}

static int parse_timers(pid_t pid, PosixTimers *pt)
{
	char path[64], *buf, *line, *save = NULL;
	size_t cap = 0;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return pr_errno(-errno, "pid %d: cannot read %s", pid, path);
	for (line = strtok_r(buf, "\n", &save); !ret && line; line = strtok_r(NULL, "\n", &save)) {
		ret = parse_line(line, pt, &cap);
		if (ret == -EINVAL)
			pr_err("pid %d: %s: cannot parse \"%s\"", pid, path, line);
	}
	free(buf);
	return ret;
}

static int count_threads(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return pr_errno(-errno, "pid %d: cannot list %s", pid, path);
	while ((de = readdir(dir)))
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

static bool is_thread_of(pid_t pid, pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d", pid, tid);
	return !access(path, F_OK);
}

/* What could not be made again the same way fails the dump. */
static int check_entry(pid_t pid, const PosixTimerEntry *e, int nr_threads)
{
	if (e->has_tid && !is_thread_of(pid, e->tid))
		return pr_errno(-EINVAL, "pid %d: timer %d signals thread %u, which has exited: it cannot be made again",
				pid, e->id, e->tid);
	/* CLOCK_THREAD_CPUTIME_ID becomes "this thread" (pid 0), and /proc does not say which. */
	if (e->clock < 0 && (e->clock & CPUCLOCK_PERTHREAD_MASK) && !CPUCLOCK_PID(e->clock) &&
	    nr_threads > 1)
		return pr_errno(-EINVAL, "pid %d: timer %d counts the CPU time of the thread that made it, which /proc/%d/timers does not name",
				pid, e->id, pid);
	return 0;
}

static uint64_t ts_to_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* timer_gettime() and timer_getoverrun(): both only read. */
static int read_value(struct infect_ctl *ctl, pid_t pid, uint64_t scratch, PosixTimerEntry *e)
{
	long args[6] = { e->id, (long)SCRATCH_FIELD(scratch, its) }, r;
	struct itimerspec its;
	int ret;

	ret = remote(ctl, pid, SYS_timer_gettime, args, &r, "timer_gettime()", e->id);
	if (!ret)
		ret = infect_read(ctl, SCRATCH_FIELD(scratch, its), &its, sizeof(its));
	if (!ret)
		ret = remote(ctl, pid, SYS_timer_getoverrun, args, &r, "timer_getoverrun()", e->id);
	if (ret)
		return ret;
	e->value_ns = ts_to_ns(&its.it_value);
	e->interval_ns = ts_to_ns(&its.it_interval);
	e->overrun = (uint32_t)r;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const PosixTimerEntry *x = *(PosixTimerEntry *const *)a, *y = *(PosixTimerEntry *const *)b;

	return (x->id > y->id) - (x->id < y->id);
}

static int read_timers(struct infect_ctl *ctl, pid_t pid, PosixTimers *pt)
{
	int nr_threads, ret = parse_timers(pid, pt);
	uint64_t scratch;

	if (ret || !pt->n_timers)
		return ret;
	nr_threads = count_threads(pid);
	if (nr_threads < 0)
		return nr_threads;
	ret = infect_scratch(ctl, sizeof(struct timer_scratch), &scratch);
	for (size_t i = 0; !ret && i < pt->n_timers; i++) {
		ret = check_entry(pid, pt->timers[i], nr_threads);
		if (!ret)
			ret = read_value(ctl, pid, scratch, pt->timers[i]);
		/* /proc/PID/timers names the thread in crest's pid namespace. */
		if (pt->timers[i]->has_tid)
			pt->timers[i]->tid = pidns_view(pt->timers[i]->tid);
	}
	/* /proc lists them in hash order; the restore without the prctl wants ascending ids. */
	qsort(pt->timers, pt->n_timers, sizeof(*pt->timers), cmp_entry);
	return ret;
}

static int posix_timers_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	PosixTimers *pt = xmalloc(sizeof(*pt));
	int err;

	if (!pt)
		return -ENOMEM;
	posix_timers__init(pt);
	err = read_timers(ctl, pid, pt);
	if (err || !pt->n_timers) {
		posix_timers__free_unpacked(pt, NULL);
		return err;
	}
	*ret = &pt->base;
	return 0;
}

/* ------------------------------- restore ------------------------------- */

/*
 * Switches the explicit-id mode of timer_create() on or off. Returns 0, or -EINVAL when the
 * kernel predates it (then only the counter is left).
 */
static int restore_ids_mode(struct infect_ctl *ctl, pid_t pid, long mode)
{
	long args[6] = { PR_TIMER_CREATE_RESTORE_IDS, mode }, r;
	int ret = infect_syscall(ctl, SYS_prctl, args, &r);

	if (ret)
		return ret;
	if (r == -EINVAL && mode == PR_TIMER_CREATE_RESTORE_IDS_ON)
		return (int)r;
	if (r)
		return pr_errno((int)r, "pid %d: prctl(PR_TIMER_CREATE_RESTORE_IDS, %ld) failed", pid, mode);
	return 0;
}

static int write_sigevent(struct infect_ctl *ctl, uint64_t scratch, const PosixTimerEntry *e)
{
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = (int)e->notify;
	sev.sigev_signo = (int)e->signo;
	sev.sigev_value.sival_ptr = (void *)(uintptr_t)e->sival;
	if (e->has_tid)
		sev._sigev_un._tid = (pid_t)e->tid;
	return infect_write(ctl, SCRATCH_FIELD(scratch, sev), &sev, sizeof(sev));
}

/*
 * timer_create() with *timerid = want first: in explicit-id mode the kernel takes that id
 * (EBUSY if it is in use); in counter mode it ignores it. *got is the id made.
 */
static int create_timer(struct infect_ctl *ctl, pid_t pid, uint64_t scratch,
			const PosixTimerEntry *e, int *got)
{
	long args[6] = { e->clock, (long)SCRATCH_FIELD(scratch, sev), (long)SCRATCH_FIELD(scratch, id) };
	long r;
	int ret;

	ret = infect_write(ctl, SCRATCH_FIELD(scratch, id), &e->id, sizeof(e->id));
	if (!ret)
		ret = remote(ctl, pid, SYS_timer_create, args, &r, "timer_create()", e->id);
	if (!ret)
		ret = infect_read(ctl, SCRATCH_FIELD(scratch, id), got, sizeof(*got));
	return ret;
}

static int delete_timer(struct infect_ctl *ctl, pid_t pid, int id)
{
	long args[6] = { id }, r;

	return remote(ctl, pid, SYS_timer_delete, args, &r, "timer_delete()", id);
}

/* Counter mode: ids below the wanted one are made and deleted again until it comes up. */
static int create_by_counter(struct infect_ctl *ctl, pid_t pid, uint64_t scratch,
			     const PosixTimerEntry *e, unsigned int *filled)
{
	int got, ret;

	for (;;) {
		ret = create_timer(ctl, pid, scratch, e, &got);
		if (ret || got == e->id)
			return ret;
		ret = delete_timer(ctl, pid, got);
		if (ret)
			return ret;
		if (got > e->id)
			return pr_errno(-EBUSY, "pid %d: timer %d: this kernel has no PR_TIMER_CREATE_RESTORE_IDS and its id counter is already at %d",
					pid, e->id, got + 1);
		if (++*filled > MAX_GAP_FILL)
			return pr_errno(-E2BIG, "pid %d: timer %d: this kernel has no PR_TIMER_CREATE_RESTORE_IDS and the ids below it are too many to fill",
					pid, e->id);
	}
}

static int create_exact(struct infect_ctl *ctl, pid_t pid, uint64_t scratch,
			const PosixTimerEntry *e)
{
	int got, ret = create_timer(ctl, pid, scratch, e, &got);

	if (!ret && got != e->id)
		return pr_errno(-EIO, "pid %d: timer %d came back as timer %d", pid, e->id, got);
	return ret;
}

static int create_all(struct infect_ctl *ctl, pid_t pid, uint64_t scratch, const PosixTimers *pt)
{
	unsigned int filled = 0;
	int ret = restore_ids_mode(ctl, pid, PR_TIMER_CREATE_RESTORE_IDS_ON), err;
	bool exact = !ret;

	if (ret && ret != -EINVAL)
		return ret;
	if (!exact)
		pr_info("pid %d: no PR_TIMER_CREATE_RESTORE_IDS here: timer ids come from the counter", pid);
	ret = 0;
	for (size_t i = 0; !ret && i < pt->n_timers; i++) {
		const PosixTimerEntry *e = pt->timers[i];

		if (i && e->id <= pt->timers[i - 1]->id)
			ret = pr_errno(-EINVAL, "pid %d: timer ids out of order in the image (%d after %d)",
				       pid, e->id, pt->timers[i - 1]->id);
		if (!ret)
			ret = write_sigevent(ctl, scratch, e);
		if (!ret)
			ret = exact ? create_exact(ctl, pid, scratch, e) :
				      create_by_counter(ctl, pid, scratch, e, &filled);
	}
	if (!exact)
		return ret;
	err = restore_ids_mode(ctl, pid, PR_TIMER_CREATE_RESTORE_IDS_OFF);
	return ret ? ret : err;
}

static struct timespec ns_to_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
}

/* Relative timer_settime() with the time that was left: it counts from now on. */
static int arm_timer(struct infect_ctl *ctl, pid_t pid, uint64_t scratch, const PosixTimerEntry *e)
{
	struct itimerspec its = { ns_to_ts(e->interval_ns), ns_to_ts(e->value_ns) };
	long args[6] = { e->id, 0, (long)SCRATCH_FIELD(scratch, its), 0 }, r;
	int ret;

	if (!e->value_ns)
		return 0;
	ret = infect_write(ctl, SCRATCH_FIELD(scratch, its), &its, sizeof(its));
	if (!ret)
		ret = remote(ctl, pid, SYS_timer_settime, args, &r, "timer_settime()", e->id);
	return ret;
}

static int posix_timers_restore(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *rec)
{
	const PosixTimers *pt = (const PosixTimers *)rec;
	uint64_t scratch;
	int ret = infect_scratch(ctl, sizeof(struct timer_scratch), &scratch);

	if (!ret)
		ret = create_all(ctl, pid, scratch, pt);
	for (size_t i = 0; !ret && i < pt->n_timers; i++) {
		ret = arm_timer(ctl, pid, scratch, pt->timers[i]);
		if (!ret && pt->timers[i]->overrun)
			pr_warn("pid %d: timer %d: its overrun count %u cannot be set again; timer_getoverrun() gives 0 until it next expires",
				pid, pt->timers[i]->id, pt->timers[i]->overrun);
	}
	return ret;
}

const struct task_kind task_kind_posix_timers = {
	.name = "posix_timers",
	.desc = &posix_timers__descriptor,
	.dump = posix_timers_dump,
	.restore_final = posix_timers_restore,
};
