/*
 * "sigaltstack": the alternate signal stack of each thread. A thread can only read and set
 * its own, so both directions are remote calls in that thread (infect_syscall_tid); reading
 * with sigaltstack(NULL, &old) changes nothing.
 *
 * A handler running on the alternate stack when the dump came needs nothing more: its
 * registers point into that stack and its memory comes back, so once the stack is set again
 * the kernel sees the thread on it (SS_ONSTACK) as before. The restore runs while the thread
 * still stands on the restorer's stack, outside the alternate one, so the kernel's refusal
 * to change a stack in use (EPERM) cannot get in the way. With SS_AUTODISARM the kernel
 * disarmed the stack while such a handler runs (SS_DISABLE is what the dump sees) and keeps
 * the setting in the signal frame, which sigreturn puts back: that too comes back with the
 * memory.
 *
 * A new thread (clone with CLONE_VM) starts without one, as does a process forked from crest,
 * so only an enabled stack is saved.
 */
#define LOG_PREFIX "task/sigaltstack: "
#include "task/task.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include "infect/infect.h"
#include "sigaltstack.pb-c.h"
#include "util/log.h"
#include "util/util.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

/* sigaltstack(new, old) in thread tid, with new and old at addresses of its memory (or 0). */
static int remote_sigaltstack(struct infect_ctl *ctl, pid_t tid, uint64_t new, uint64_t old)
{
	long args[6] = { (long)new, (long)old }, r;
	int ret = infect_syscall_tid(ctl, tid, SYS_sigaltstack, args, &r);

	if (ret)
		return ret;
	if (r)
		return pr_errno((int)r, "thread %d: cannot %s its alternate signal stack", tid,
				new ? "set" : "read");
	return 0;
}

static int sigaltstack_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	SigaltstackEntry *se;
	uint64_t addr;
	stack_t ss;
	int err;

	err = infect_scratch(ctl, sizeof(ss), &addr);
	if (!err)
		err = remote_sigaltstack(ctl, tid, 0, addr);
	if (!err)
		err = infect_read(ctl, addr, &ss, sizeof(ss));
	if (err || (ss.ss_flags & SS_DISABLE))
		return err;
	se = xmalloc(sizeof(*se));
	if (!se)
		return -ENOMEM;
	sigaltstack_entry__init(se);
	se->sp = (uintptr_t)ss.ss_sp;
	se->size = ss.ss_size;
	se->flags = (uint32_t)ss.ss_flags & ~(uint32_t)SS_ONSTACK;
	*ret = &se->base;
	return 0;
}

static int sigaltstack_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec)
{
	const SigaltstackEntry *se = (const SigaltstackEntry *)rec;
	stack_t ss = {
		.ss_sp = (void *)(uintptr_t)se->sp,
		.ss_flags = (int)se->flags,
		.ss_size = se->size,
	};
	uint64_t addr;
	int ret;

	ret = infect_scratch(ctl, sizeof(ss), &addr);
	if (!ret)
		ret = infect_write(ctl, addr, &ss, sizeof(ss));
	if (!ret)
		ret = remote_sigaltstack(ctl, tid, addr, 0);
	if (ret)
		pr_err("thread %d: the alternate signal stack at %#llx (%llu bytes, flags %#x) is not restored",
		       tid, (unsigned long long)se->sp, (unsigned long long)se->size, se->flags);
	return ret;
}

const struct task_kind task_kind_sigaltstack = {
	.name = "sigaltstack",
	.desc = &sigaltstack_entry__descriptor,
	.dump_thread = sigaltstack_dump_thread,
	.restore_thread_final = sigaltstack_restore_thread,
};
