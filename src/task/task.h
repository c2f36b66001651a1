/* Per-task state: what a process and each of its threads carry besides memory and files. */
#ifndef CREST_TASK_TASK_H
#define CREST_TASK_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core.pb-c.h"

struct infect_ctl;

/*
 * Dump: fills tc (pid, comm, sigactions, personality, umask, cwd, exit_signal) for process
 * pid, whose threads are all seized and stopped; ctl is a remote-syscall channel into it.
 * Allocations belong to tc; free with task_free_core.
 */
int task_dump_core(struct infect_ctl *ctl, pid_t pid, TaskCore *tc);
void task_free_core(TaskCore *tc);

/*
 * Dump: fills th for thread tid of the process behind ctl (tid seized and stopped):
 * registers and extended state (arch), blocked mask, rseq, clear_child_tid, name.
 */
int task_dump_thread(struct infect_ctl *ctl, pid_t tid, ThreadCore *th);
void task_free_thread(ThreadCore *th);

/*
 * Dump: appends the siginfos pending on thread tid (or, with shared, on its whole process)
 * to *ret, which holds *nr entries (malloc'ed data each).
 */
int task_dump_pending(pid_t tid, bool shared, ProtobufCBinaryData **ret, size_t *nr);
void task_free_pending(ProtobufCBinaryData *info, size_t nr);

/*
 * A kind of per-task state that lives in one file of src/task/ with its own proto record,
 * stored as a task_extra in task_core (process-wide) or thread_core (per thread). Every op is
 * optional. Dump ops set *ret to NULL when the task has nothing but defaults.
 */
struct task_kind {
	/* task_extra.kind; also what `crest show` prints. */
	const char *name;
	/* The kind's record type. */
	const ProtobufCMessageDescriptor *desc;
	/* Dump, process-wide: every thread of pid is stopped; ctl runs remote syscalls. */
	int (*dump)(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret);
	/* Dump, per thread: tid is stopped; ctl belongs to its process. */
	int (*dump_thread)(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret);
	/*
	 * Restore, in the process being restored while it is still crest (it has its pid, not
	 * yet its fd table nor its memory). For process-wide state a task sets on itself.
	 */
	int (*restore_self)(pid_t pid, const ProtobufCMessage *rec);
	/*
	 * Restore, in the controller, once every thread of pid exists and is stopped (seized)
	 * (pid and tid as the controller sees them, which differ from the image's, the tree's
	 * view, when the tree has its own pid namespace: pidns_host translates those)
	 * inside the restorer, before the target's registers are loaded. ctl runs remote
	 * syscalls in the process (infect_syscall_tid for a given thread), for state a task
	 * can only set on itself; state settable from outside (scheduling, affinity) needs no
	 * ctl. Kinds run in table order: credentials and seccomp come last.
	 */
	int (*restore_final)(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *rec);
	int (*restore_thread_final)(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec);
};

/* The task kinds (task/kinds.c), NULL-terminated. */
extern const struct task_kind *const task_kinds[];
const ProtobufCMessageDescriptor *task_kind_payload_desc(const char *name);

/* Dump: fills tc->extras / th->extras from every kind. */
int task_dump_extras(struct infect_ctl *ctl, pid_t pid, TaskCore *tc);
int task_dump_thread_extras(struct infect_ctl *ctl, pid_t tid, ThreadCore *th);
void task_free_extras(TaskExtra **extras, size_t nr);
/* Restore: runs restore_self of the kinds in tc (in the process being restored). */
int task_restore_self(pid_t pid, const TaskCore *tc);
/* Restore: runs restore_final / restore_thread_final (in the controller), kind by kind. */
int task_restore_final(struct infect_ctl *ctl, pid_t pid, const TaskCore *tc,
		       ThreadCore *const *threads, size_t nr);

#endif
