/* Private to src/arch/x86_64/: what regs.c needs from arch.c. */
#ifndef CREST_ARCH_X86_64_ARCH_REGS_H
#define CREST_ARCH_X86_64_ARCH_REGS_H

#include <stddef.h>

/*
 * Bytes to offer PTRACE_GETREGSET NT_X86_XSTATE: the largest XSAVE area this CPU can need
 * (CPUID leaf 0xD), which covers every feature the kernel exposes to user space.
 */
size_t x86_xsave_size(void);

#endif
