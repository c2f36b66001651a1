/*
 * "sched": per-thread scheduling: policy and real-time priority, nice, CPU affinity, I/O
 * priority and timer slack. All of them can be read and set from outside the thread, so the
 * controller restores them while the threads are still stopped, and no remote call is needed.
 */
#define LOG_PREFIX "task/sched: "
#include "task/task.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sched.pb-c.h"
#include "util/log.h"
#include "util/util.h"

#define IOPRIO_WHO_PROCESS 1
#define AFFINITY_BYTES 1024	/* 8192 CPUs */

static int read_timerslack(pid_t tid, uint64_t *ns)
{
	char path[64], *buf;

	snprintf(path, sizeof(path), "/proc/%d/timerslack_ns", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	*ns = strtoull(buf, NULL, 10);
	free(buf);
	return 0;
}

static int read_attrs(pid_t tid, SchedAttrs *sa)
{
	struct sched_param param;
	int policy, ioprio;
	long n;

	policy = sched_getscheduler(tid);
	if (policy < 0 || sched_getparam(tid, &param))
		return pr_errno(-errno, "thread %d: cannot read its scheduling policy", tid);
	errno = 0;
	sa->nice = getpriority(PRIO_PROCESS, tid);
	if (errno)
		return pr_errno(-errno, "thread %d: cannot read its nice value", tid);
	n = syscall(SYS_sched_getaffinity, tid, AFFINITY_BYTES, sa->affinity.data);
	if (n < 0)
		return pr_errno(-errno, "thread %d: cannot read its CPU affinity", tid);
	sa->affinity.len = n;
	ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid);
	if (ioprio < 0)
		return pr_errno(-errno, "thread %d: cannot read its I/O priority", tid);
	sa->policy = policy;
	sa->rt_priority = param.sched_priority;
	sa->ioprio = ioprio;
	sa->has_timerslack_ns = !read_timerslack(tid, &sa->timerslack_ns);
	return 0;
}

static int sched_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	SchedAttrs *sa = xmalloc(sizeof(*sa));
	int err;

	if (!sa)
		return -ENOMEM;
	sched_attrs__init(sa);
	sa->affinity.data = xzalloc(AFFINITY_BYTES);
	err = sa->affinity.data ? read_attrs(tid, sa) : -ENOMEM;
	if (err) {
		sched_attrs__free_unpacked(sa, NULL);
		return err;
	}
	*ret = &sa->base;
	return 0;
}

static int write_timerslack(pid_t tid, uint64_t ns)
{
	char path[64], buf[32];
	int fd, ret;

	snprintf(path, sizeof(path), "/proc/%d/timerslack_ns", tid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)ns);
	ret = write_all(fd, buf, strlen(buf));
	close(fd);
	return ret;
}

/* True when tid already has what sa asks for (then nothing is set: setting some needs privilege). */
static bool attr_unchanged(pid_t tid, const SchedAttrs *sa, SchedAttrs *now)
{
	return !read_attrs(tid, now) && now->policy == sa->policy &&
	       now->rt_priority == sa->rt_priority && now->nice == sa->nice &&
	       now->ioprio == sa->ioprio && now->affinity.len == sa->affinity.len &&
	       !memcmp(now->affinity.data, sa->affinity.data, sa->affinity.len) &&
	       (!sa->has_timerslack_ns || now->timerslack_ns == sa->timerslack_ns);
}

/* Policy before nice: leaving SCHED_IDLE or a real-time class resets nothing we set after. */
static int sched_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec)
{
	const SchedAttrs *sa = (const SchedAttrs *)rec;
	struct sched_param param = { .sched_priority = sa->rt_priority };
	SchedAttrs now = SCHED_ATTRS__INIT;
	uint8_t mask[AFFINITY_BYTES];
	bool same;

	now.affinity.data = mask;
	same = attr_unchanged(tid, sa, &now);
	if (same)
		return 0;
	if (sched_setscheduler(tid, sa->policy, &param))
		return pr_errno(-errno, "thread %d: cannot set scheduling policy %u priority %u",
				tid, sa->policy, sa->rt_priority);
	if (setpriority(PRIO_PROCESS, tid, sa->nice))
		return pr_errno(-errno, "thread %d: cannot set nice %d", tid, sa->nice);
	if (syscall(SYS_sched_setaffinity, tid, sa->affinity.len, sa->affinity.data))
		return pr_errno(-errno, "thread %d: cannot set its CPU affinity (CPUs missing here?)", tid);
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, sa->ioprio))
		return pr_errno(-errno, "thread %d: cannot set I/O priority %#x", tid, sa->ioprio);
	if (sa->has_timerslack_ns && now.timerslack_ns != sa->timerslack_ns &&
	    write_timerslack(tid, sa->timerslack_ns))
		return pr_errno(-errno, "thread %d: cannot set timer slack %llu ns", tid,
				(unsigned long long)sa->timerslack_ns);
	return 0;
}

const struct task_kind task_kind_sched = {
	.name = "sched",
	.desc = &sched_attrs__descriptor,
	.dump_thread = sched_dump_thread,
	.restore_thread_final = sched_restore_thread,
};
