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

#endif
