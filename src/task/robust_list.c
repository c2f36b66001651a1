/*
 * "robust_list": the robust futex list of each thread. When a thread dies, the kernel walks
 * that list and marks every robust mutex the thread still holds FUTEX_OWNER_DIED, so the
 * next locker gets EOWNERDEAD instead of waiting forever; a restored thread that lost its
 * registration would leave its mutexes locked for good.
 *
 * get_robust_list(tid) reads it from outside (ptrace read access is enough), but only the
 * thread itself can register one, so the restore is a remote set_robust_list() in each
 * thread. The list lives in the thread's memory (glibc keeps it in its TCB), which comes back
 * with the memory: only the registration is needed. A new thread starts with none.
 */
#define LOG_PREFIX "task/robust_list: "
#include "task/task.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "infect/infect.h"
#include "robust_list.pb-c.h"
#include "util/log.h"
#include "util/util.h"

static int robust_list_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	RobustListEntry *re;
	void *head;
	size_t len;

	if (syscall(SYS_get_robust_list, tid, &head, &len))
		return pr_errno(-errno, "thread %d: cannot read its robust futex list", tid);
	if (!head)
		return 0;
	re = xmalloc(sizeof(*re));
	if (!re)
		return -ENOMEM;
	robust_list_entry__init(re);
	re->head = (uintptr_t)head;
	re->len = len;
	*ret = &re->base;
	return 0;
}

static int robust_list_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec)
{
	const RobustListEntry *re = (const RobustListEntry *)rec;
	long args[6] = { (long)re->head, (long)re->len }, r;
	int ret = infect_syscall_tid(ctl, tid, SYS_set_robust_list, args, &r);

	if (ret)
		return ret;
	if (r)
		return pr_errno((int)r, "thread %d: cannot register its robust futex list at %#llx (%llu bytes)",
				tid, (unsigned long long)re->head, (unsigned long long)re->len);
	return 0;
}

const struct task_kind task_kind_robust_list = {
	.name = "robust_list",
	.desc = &robust_list_entry__descriptor,
	.dump_thread = robust_list_dump_thread,
	.restore_thread_final = robust_list_restore_thread,
};
