/*
 * long rst_clone3_thread(struct clone_args *ca, size_t size,
 *			  void (*fn)(void *, void *), void *a, void *b);
 *
 * Needs assembly because the child comes back from the syscall on a different stack: it must
 * not touch the parent's frame (no return, no locals). syscall clobbers rax, rcx and r11 only,
 * and the child starts with the parent's other registers, so fn stays in rdx, b in r8, and a
 * moves from rcx to r9 before the call.
 */
#include <asm/unistd.h>

	.text
	.globl	rst_clone3_thread
	.hidden	rst_clone3_thread
	.type	rst_clone3_thread, @function
rst_clone3_thread:
	movq	%rcx, %r9
	movl	$__NR_clone3, %eax
	syscall
	testq	%rax, %rax
	jz	1f
	ret			/* parent: the child's tid, or -errno */
1:
	/* child: rsp = ca->stack + ca->stack_size, 16-byte aligned by contract */
	xorl	%ebp, %ebp
	movq	%r9, %rdi
	movq	%r8, %rsi
	call	*%rdx
	ud2			/* fn never returns */
	.size	rst_clone3_thread, . - rst_clone3_thread

	.section .note.GNU-stack, "", @progbits
