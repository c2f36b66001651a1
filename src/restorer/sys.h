/*
 * Named system calls for the restorer, over the arch's raw rst_syscallN() (no libc, no errno:
 * each returns the kernel's value, -errno on failure). Only what the restorer uses.
 */
#ifndef CREST_RESTORER_SYS_H
#define CREST_RESTORER_SYS_H

#include <stddef.h>
#include <stdint.h>

#include "restorer/syscall.h"

#define RST_PTR(addr)	((void *)(uintptr_t)(addr))

static inline long sys_munmap(uint64_t addr, uint64_t len)
{
	return rst_syscall2(__NR_munmap, (long)addr, (long)len);
}

static inline long sys_mremap(uint64_t old, uint64_t old_len, uint64_t new_len, long flags,
			      uint64_t new_addr)
{
	return rst_syscall5(__NR_mremap, (long)old, (long)old_len, (long)new_len, flags,
			    (long)new_addr);
}

static inline long sys_mprotect(uint64_t addr, uint64_t len, long prot)
{
	return rst_syscall3(__NR_mprotect, (long)addr, (long)len, prot);
}

static inline long sys_mincore(uint64_t addr, uint64_t len, unsigned char *vec)
{
	return rst_syscall3(__NR_mincore, (long)addr, (long)len, (long)vec);
}

static inline long sys_rseq(uint64_t rseq, uint32_t len, int flags, uint32_t sig)
{
	return rst_syscall4(__NR_rseq, (long)rseq, len, flags, sig);
}

static inline long sys_prctl(long option, long a2, long a3, long a4, long a5)
{
	return rst_syscall5(__NR_prctl, option, a2, a3, a4, a5);
}

static inline long sys_rt_sigqueueinfo(int tgid, int sig, const void *info)
{
	return rst_syscall3(__NR_rt_sigqueueinfo, tgid, sig, (long)info);
}

static inline long sys_rt_tgsigqueueinfo(int tgid, int tid, int sig, const void *info)
{
	return rst_syscall4(__NR_rt_tgsigqueueinfo, tgid, tid, sig, (long)info);
}

static inline long sys_close(int fd)
{
	return rst_syscall1(__NR_close, fd);
}

static inline long sys_rt_sigaction(int sig, const void *act, void *oact, size_t sigsetsize)
{
	return rst_syscall4(__NR_rt_sigaction, sig, (long)act, (long)oact, (long)sigsetsize);
}

static inline long sys_set_tid_address(uint64_t tidptr)
{
	return rst_syscall1(__NR_set_tid_address, (long)tidptr);
}

static inline long sys_futex(uint32_t *uaddr, int op, uint32_t val, const void *timeout)
{
	return rst_syscall6(__NR_futex, (long)uaddr, op, val, (long)timeout, 0, 0);
}

static inline long sys_gettid(void)
{
	return rst_syscall0(__NR_gettid);
}

static inline __attribute__((noreturn)) void sys_exit_group(int status)
{
	for (;;)
		rst_syscall1(__NR_exit_group, status);
}

#endif
