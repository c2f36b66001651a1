/*
 * The blob's first instruction (offset 0: restorer.lds places .text.entry first).
 *
 * crest jumps here, it does not call: rdi holds the struct rst_args address, rsp is the top of
 * thread 0's restorer stack, and there is no return address. Make the frame a valid start for
 * C (ABI: rsp 16-byte aligned before a call, rbp zero to end frame-pointer walks).
 */
	.section .text.entry, "ax", @progbits
	.globl	rst_entry
	.hidden	rst_entry
	.type	rst_entry, @function
rst_entry:
	xorl	%ebp, %ebp
	andq	$-16, %rsp
	call	rst_main
	ud2			/* rst_main never returns */
	.size	rst_entry, . - rst_entry

	.section .note.GNU-stack, "", @progbits
