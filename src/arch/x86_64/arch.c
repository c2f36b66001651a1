/*
 * x86_64: CPU description for `crest check`, the XSAVE area size, and the jump onto the
 * restorer.
 */
#define LOG_PREFIX "arch: "

#include <cpuid.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/arch.h"
#include "arch-regs.h"
#include "util/util.h"

/* XCR0 bits (Intel SDM vol. 1, 13.1): what the OS has enabled for XSAVE. */
#define XFEATURE_SSE_YMM	0x06ULL		/* SSE + AVX upper halves */
#define XFEATURE_AVX512		0xe0ULL		/* opmask, ZMM_Hi256, Hi16_ZMM */

/* Fallback when CPUID gives nothing usable; the kernel trims iov_len to what it fills. */
#define XSAVE_FALLBACK_SIZE	(64 * 1024)

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;

	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* XCR0, or 0 when the OS does not use XSAVE (then xgetbv would fault). */
static uint64_t enabled_xfeatures(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return 0;
	return read_xcr0();
}

size_t x86_xsave_size(void)
{
	static size_t size;	/* a property of the CPU: computed once */
	unsigned int a, b, c, d;

	if (size)
		return size;
	/* CPUID.(0xD, 0).ECX: the XSAVE area size for every feature the CPU supports. */
	if (__get_cpuid_count(0xd, 0, &a, &b, &c, &d) && c >= 576)
		size = c;
	else
		size = XSAVE_FALLBACK_SIZE;
	return size;
}

void arch_describe_cpu(char *buf, size_t len)
{
	unsigned int a, b, c, d;
	uint64_t xcr0 = enabled_xfeatures();
	bool avx = false, avx512 = false;

	if (__get_cpuid(1, &a, &b, &c, &d))
		avx = (c & bit_AVX) && (xcr0 & XFEATURE_SSE_YMM) == XFEATURE_SSE_YMM;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
		avx512 = (b & bit_AVX512F) && (xcr0 & XFEATURE_AVX512) == XFEATURE_AVX512;
	snprintf(buf, len, "x86_64: xsave area %zu bytes (xcr0 %#llx), avx %s, avx-512 %s",
		 x86_xsave_size(), (unsigned long long)xcr0, avx ? "yes" : "no",
		 avx512 ? "yes" : "no");
}

/*
 * A jump, not a call (the restorer's entry, rst_entry, expects exactly this): rsp =
 * stack_top with no return address, args in rdi, rbp zero to end any backtrace. entry and
 * args are pinned to rax and rdi, so neither can sit in rbp (cleared before the jump), and
 * nothing is read from the old stack once rsp moves.
 */
__attribute__((noreturn)) void arch_jump_to_restorer(uint64_t entry, uint64_t stack_top,
						     uint64_t args)
{
	asm volatile("movq %0, %%rsp\n\t"
		     "xorl %%ebp, %%ebp\n\t"
		     "jmpq *%1\n\t"
		     : : "r"(stack_top), "a"(entry), "D"(args) : "memory");
	__builtin_unreachable();
}
