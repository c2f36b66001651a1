/*
 * Raw system calls for the restorer blob on x86_64: no libc, no errno. Every call returns the
 * kernel's value unchanged, so a failure is a value in [-4095, -1].
 *
 * Also the few things that differ by architecture: the page size, how the vDSO is mapped, and
 * the clone3 trampoline (clone.S).
 */
#ifndef CREST_ARCH_X86_64_RESTORER_SYSCALL_H
#define CREST_ARCH_X86_64_RESTORER_SYSCALL_H

#include <stddef.h>
#include <stdint.h>

#include <asm/prctl.h>
#include <asm/unistd.h>

#define RST_PAGE_SIZE	4096UL

/*
 * The syscall instruction takes nr in rax and arguments in rdi, rsi, rdx, r10, r8, r9; it
 * returns in rax and clobbers rcx (return rip) and r11 (rflags). "memory": the kernel reads
 * and writes user memory behind the compiler's back.
 */
static inline long rst_syscall0(long nr)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall1(long nr, long a1)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1) : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall2(long nr, long a1, long a2)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2) : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall3(long nr, long a1, long a2, long a3)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall4(long nr, long a1, long a2, long a3, long a4)
{
	register long r10 asm("r10") = a4;
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall5(long nr, long a1, long a2, long a3, long a4, long a5)
{
	register long r10 asm("r10") = a4;
	register long r8 asm("r8") = a5;
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long rst_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 asm("r10") = a4;
	register long r8 asm("r8") = a5;
	register long r9 asm("r9") = a6;
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8),
		     "r"(r9) : "rcx", "r11", "memory");
	return ret;
}

/*
 * Maps the vDSO block (vvar, vvar_vclock, then the vDSO text on 6.18) with addr as a hint:
 * arch_prctl(ARCH_MAP_VDSO_64) goes through get_unmapped_area() without MAP_FIXED, so the
 * kernel may put it elsewhere; the caller checks. It fails with EEXIST while any vDSO is still
 * mapped in this mm. On success it returns the size of the vDSO text (prctl_map_vdso() returns
 * image->size: 8192 here), not an address.
 */
static inline long rst_arch_map_vdso(uint64_t addr)
{
	return rst_syscall2(__NR_arch_prctl, ARCH_MAP_VDSO_64, (long)addr);
}

/*
 * clone3(ca, size) for a thread that starts on its own stack (clone.S). The child calls
 * fn(a, b) on the stack the kernel gave it (ca->stack + ca->stack_size, 16-byte aligned) and
 * must never return. The parent gets the child's tid or -errno.
 */
struct clone_args;
long rst_clone3_thread(struct clone_args *ca, size_t size, void (*fn)(void *, void *),
		       void *a, void *b);

#endif
