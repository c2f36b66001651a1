/*
 * What every architecture provides. Each src/arch/<arch>/ defines exactly these functions
 * (as redis' ae_*.c backends do); nothing outside src/arch/ knows a register by name.
 */
#ifndef CREST_ARCH_ARCH_H
#define CREST_ARCH_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"

/* Saved register state of a stopped thread, as the arch keeps it for remote syscalls. */
struct arch_regs;
size_t arch_regs_size(void);

/* Reads/writes the general registers of a ptrace-stopped thread. */
int arch_regs_get(pid_t tid, struct arch_regs *regs);
int arch_regs_set(pid_t tid, const struct arch_regs *regs);
/*
 * Fills regs (a copy of a thread's registers) so that execution at ip runs syscall nr with
 * args, as a remote call; and reads the result back.
 */
void arch_regs_prepare_syscall(struct arch_regs *regs, uint64_t ip, long nr, const long args[6]);
long arch_regs_syscall_result(const struct arch_regs *regs);
/*
 * The instruction pointer of saved registers. infect uses it to tell whether a remote syscall
 * ran, and to apply an rseq abort (ip = abort_ip) exactly as the kernel would.
 */
uint64_t arch_regs_ip(const struct arch_regs *regs);
void arch_regs_set_ip(struct arch_regs *regs, uint64_t ip);
/* Finds the syscall instruction in code (e.g. the vDSO text); returns its offset or -1. */
long arch_find_syscall_insn(const void *code, size_t len);

/*
 * Dump: fills tc->regs and tc->xsave from the stopped thread tid (allocating with malloc;
 * free with arch_free_thread_regs). A thread stopped inside an interrupted syscall is saved
 * so that restore resumes it correctly (restartable syscalls are restarted, those that need
 * kernel restart state get EINTR, as a signal would give).
 */
int arch_dump_thread_regs(pid_t tid, ThreadCore *tc);
void arch_free_thread_regs(ThreadCore *tc);
/* Restore: loads tc's registers and extended state into the ptrace-stopped thread tid. */
int arch_restore_thread_regs(pid_t tid, const ThreadCore *tc);

/*
 * Moves the calling process onto the restorer: sets the stack pointer to stack_top and
 * jumps to entry(args). Never returns.
 */
__attribute__((noreturn)) void arch_jump_to_restorer(uint64_t entry, uint64_t stack_top, uint64_t args);

/* The embedded restorer blob (built from src/restorer/ and src/arch/<arch>/restorer/). */
extern const char restorer_blob[];
extern const char restorer_blob_end[];

/* Names of the arch's features for `crest check` (xsave size, AVX-512, ...). */
void arch_describe_cpu(char *buf, size_t len);

#endif
