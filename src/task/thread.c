/*
 * Per-thread state for core-<pid>.img: registers and extended state (arch), blocked signal
 * mask, rseq registration, clear_child_tid and the thread's name.
 */
#define LOG_PREFIX "task: "

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "task/task.h"
#include "arch/arch.h"
#include "infect/infect.h"
#include "util/log.h"
#include "util/util.h"

/*
 * clear_child_tid (set_tid_address(), CLONE_CHILD_CLEARTID) is shown to the thread alone:
 * prctl(PR_GET_TID_ADDRESS) stores it at a user pointer, so run it in that very thread.
 */
static int dump_clear_tid(struct infect_ctl *ctl, pid_t tid, ThreadCore *th)
{
	long args[6] = { PR_GET_TID_ADDRESS }, r;
	uint64_t addr, val;
	int ret;

	ret = infect_scratch(ctl, sizeof(val), &addr);
	if (ret)
		return ret;
	args[1] = (long)addr;
	ret = infect_syscall_tid(ctl, tid, SYS_prctl, args, &r);
	if (ret)
		return ret;
	if (r) {
		pr_err("tid %d: prctl(PR_GET_TID_ADDRESS) failed: %s", tid, strerror((int)-r));
		return (int)r;
	}
	ret = infect_read(ctl, addr, &val, sizeof(val));
	if (ret)
		return ret;
	th->clear_tid_addr = val;
	th->has_clear_tid_addr = true;
	return 0;
}

/* The real mask, also for a thread stopped in sigsuspend() or ppoll() (see infect.c). */
static int dump_sigmask(pid_t tid, ThreadCore *th)
{
	uint64_t mask;

	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(mask), &mask)) {
		int ret = -errno;

		pr_perror("tid %d: cannot read the blocked signal mask", tid);
		return ret;
	}
	th->blocked = mask;
	return 0;
}

/* glibc 2.35+ registers an rseq area in every thread; restore must register it again. */
static int dump_rseq(pid_t tid, ThreadCore *th)
{
	struct __ptrace_rseq_configuration conf;
	RseqConfig *rc;

	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(conf), &conf) < 0) {
		int ret = -errno;

		pr_perror("tid %d: cannot read the rseq registration", tid);
		return ret;
	}
	if (!conf.rseq_abi_pointer)
		return 0;
	rc = xmalloc(sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rseq_config__init(rc);
	rc->ptr = conf.rseq_abi_pointer;
	rc->size = conf.rseq_abi_size;
	rc->sig = conf.signature;
	th->rseq = rc;
	return 0;
}

static int dump_comm(pid_t tid, ThreadCore *th)
{
	char path[64], *comm, *nl;

	/* /proc/TID/task/TID works for any thread without knowing its process. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", tid, tid);
	comm = read_file_at(AT_FDCWD, path, NULL);
	if (!comm) {
		int ret = -errno;

		pr_perror("tid %d: cannot read %s", tid, path);
		return ret;
	}
	nl = strchr(comm, '\n');
	if (nl)
		*nl = '\0';
	th->comm = comm;
	return 0;
}

/*
 * The remote call goes first: it may move the thread out of an rseq critical section to its
 * abort handler (infect applies the abort the kernel would), and the registers dumped must
 * be the ones the thread really resumes with.
 */
int task_dump_thread(struct infect_ctl *ctl, pid_t tid, ThreadCore *th)
{
	int ret;

	thread_core__init(th);
	th->tid = tid;
	ret = dump_clear_tid(ctl, tid, th);
	if (!ret)
		ret = arch_dump_thread_regs(tid, th);
	if (!ret)
		ret = dump_sigmask(tid, th);
	if (!ret)
		ret = dump_rseq(tid, th);
	if (!ret)
		ret = dump_comm(tid, th);
	if (!ret)
		ret = task_dump_pending(tid, false, &th->siginfo, &th->n_siginfo);
	if (!ret)
		ret = task_dump_thread_extras(ctl, tid, th);
	if (ret)
		task_free_thread(th);
	return ret;
}

void task_free_thread(ThreadCore *th)
{
	arch_free_thread_regs(th);
	free(th->rseq);
	free(th->comm);
	task_free_pending(th->siginfo, th->n_siginfo);
	task_free_extras(th->extras, th->n_extras);
	thread_core__init(th);
}
