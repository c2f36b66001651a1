/*
 * infect: the only code that stops, inspects or runs anything inside a live target.
 *
 * Threads are seized with PTRACE_SEIZE and stopped with PTRACE_INTERRUPT, so a dump never
 * sends a signal the target could notice and a release resumes it exactly as before.
 * Remote syscalls execute the `syscall` instruction of the target's own vDSO: no byte of the
 * target's code is ever written.
 */
#ifndef CREST_INFECT_INFECT_H
#define CREST_INFECT_INFECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define __must_check __attribute__((warn_unused_result))

/*
 * Seizes thread tid and waits (up to timeout_ms) until it is in a ptrace stop.
 * Returns 0, -ESRCH if the thread is gone (or a zombie), -EBUSY if another tracer holds it,
 * -ETIMEDOUT if it did not stop in time (uninterruptible sleep, vfork parent), or -errno.
 * A thread that was not seized is left untouched.
 */
int __must_check infect_seize(pid_t tid, int timeout_ms);
/* Detaches from a seized thread: it runs on exactly as before the seize. */
int infect_release(pid_t tid);
/* Kills a seized thread's whole process (SIGKILL) and detaches. */
int infect_kill(pid_t tid);

/*
 * Waits for the next ptrace stop of tid (after infect_seize or an explicit
 * PTRACE_INTERRUPT); returns 0 or -errno. Used by restore's final stage.
 */
int __must_check infect_interrupt(pid_t tid, int timeout_ms);

/* A remote-syscall channel into one stopped thread of a process. */
struct infect_ctl;

/*
 * Prepares remote syscalls in pid through its seized, stopped thread tid: saves the thread's
 * registers and finds a `syscall` instruction in the target's vDSO. Fails with -ENOENT when
 * the target has no vDSO.
 */
int __must_check infect_ctl_open(pid_t pid, pid_t tid, struct infect_ctl **ret);
/*
 * Runs syscall nr with up to six arguments inside the target; *ret gets the raw return value
 * (a negative errno when the syscall failed). Returns 0, or -errno when the ptrace
 * machinery itself failed (then the target is not usable any more).
 */
int __must_check infect_syscall(struct infect_ctl *ctl, long nr, const long args[6], long *ret);
/*
 * The same in another seized, stopped thread tid of the same process (for state only a
 * thread can see of itself, such as its clear_child_tid); its registers are saved and put
 * back around the call.
 */
int __must_check infect_syscall_tid(struct infect_ctl *ctl, pid_t tid, long nr, const long args[6],
				    long *ret);
/*
 * Returns the address of a private read-write scratch area of at least size bytes inside
 * the target (mapped on first use, removed by infect_ctl_close), for syscalls that take
 * pointers.
 */
int __must_check infect_scratch(struct infect_ctl *ctl, size_t size, uint64_t *ret_addr);
/* Copies to and from the target's memory (process_vm_readv/writev, /proc/PID/mem fallback). */
int __must_check infect_read(struct infect_ctl *ctl, uint64_t addr, void *buf, size_t len);
int __must_check infect_write(struct infect_ctl *ctl, uint64_t addr, const void *buf, size_t len);
/* Removes the scratch area and puts the thread's registers back as they were. */
int infect_ctl_close(struct infect_ctl *ctl);

/* Whether crest (this process) is tid's tracer now, from /proc/TID/status. */
bool infect_traced_by_us(pid_t tid);

#endif
