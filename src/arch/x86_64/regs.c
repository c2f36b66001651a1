/*
 * x86_64 registers: the general registers (struct user_regs_struct) and the XSAVE area, read
 * and written with ptrace on a stopped thread, for remote syscalls, dump and restore.
 */
#define LOG_PREFIX "arch: "

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>

#include "arch/arch.h"
#include "arch-regs.h"
#include "util/log.h"
#include "util/util.h"

/*
 * What a syscall interrupted by a signal leaves in ax until the kernel, on the way back to
 * user space, turns it into a restart or an error (include/linux/errno.h; user space never
 * sees them).
 */
#define ERESTARTSYS		512
#define ERESTARTNOINTR		513
#define ERESTARTNOHAND		514
#define ERESTART_RESTARTBLOCK	516

/* `syscall` is 0f 05; after it, ip points 2 bytes further. */
#define SYSCALL_INSN_LEN	2

struct arch_regs {
	struct user_regs_struct r;
};

/* X86Regs field, user_regs_struct field: the image keeps the kernel's order and meaning. */
#define X86_REGS(X) \
	X(r15, r15) X(r14, r14) X(r13, r13) X(r12, r12) X(bp, rbp) X(bx, rbx) \
	X(r11, r11) X(r10, r10) X(r9, r9) X(r8, r8) X(ax, rax) X(cx, rcx) \
	X(dx, rdx) X(si, rsi) X(di, rdi) X(orig_ax, orig_rax) X(ip, rip) X(cs, cs) \
	X(flags, eflags) X(sp, rsp) X(ss, ss) X(fs_base, fs_base) X(gs_base, gs_base) \
	X(ds, ds) X(es, es) X(fs, fs) X(gs, gs)

size_t arch_regs_size(void)
{
	return sizeof(struct arch_regs);
}

int arch_regs_get(pid_t tid, struct arch_regs *regs)
{
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs->r)) {
		int ret = -errno;

		pr_perror("tid %d: cannot read registers", tid);
		return ret;
	}
	return 0;
}

int arch_regs_set(pid_t tid, const struct arch_regs *regs)
{
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs->r)) {
		int ret = -errno;

		pr_perror("tid %d: cannot write registers", tid);
		return ret;
	}
	return 0;
}

/*
 * orig_ax = -1 says "not in a syscall": the thread is stopped on its way out of the kernel,
 * and if it was interrupted in a syscall the kernel would otherwise apply that syscall's
 * restart logic (ip -= 2, ax = orig_ax) to our registers when it resumes.
 */
void arch_regs_prepare_syscall(struct arch_regs *regs, uint64_t ip, long nr, const long args[6])
{
	struct user_regs_struct *r = &regs->r;

	r->rax = nr;
	r->orig_rax = (unsigned long long)-1;
	r->rip = ip;
	r->rdi = args[0];
	r->rsi = args[1];
	r->rdx = args[2];
	r->r10 = args[3];
	r->r8 = args[4];
	r->r9 = args[5];
}

long arch_regs_syscall_result(const struct arch_regs *regs)
{
	return (long)regs->r.rax;
}

uint64_t arch_regs_ip(const struct arch_regs *regs)
{
	return regs->r.rip;
}

void arch_regs_set_ip(struct arch_regs *regs, uint64_t ip)
{
	regs->r.rip = ip;
}

long arch_find_syscall_insn(const void *code, size_t len)
{
	const char *p = memmem(code, len, "\x0f\x05", SYSCALL_INSN_LEN);

	return p ? p - (const char *)code : -1;
}

/*
 * A thread stopped on its way out of an interrupted syscall (orig_ax >= 0) still holds a
 * restart code in ax. The kernel resolves it only when the thread returns to user space
 * (arch_do_signal_or_restart()); the image must hold what user space then sees when no
 * signal handler runs: the syscall re-executed (ax = nr, ip back on the `syscall`), or,
 * for -ERESTART_RESTARTBLOCK, -EINTR, because the restart_block it would continue with is
 * kernel state a restore cannot recreate (nanosleep has already stored the remaining time).
 * Applied to the image only: a --leave-running dump resumes the live thread untouched.
 */
static void fixup_syscall_restart(X86Regs *x)
{
	if ((int64_t)x->orig_ax < 0)
		return;
	switch ((int64_t)x->ax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		x->ax = x->orig_ax;
		x->ip -= SYSCALL_INSN_LEN;
		break;
	case -ERESTART_RESTARTBLOCK:
		/*
		 * poll() with no timeout keeps nothing in its restart block that its arguments
		 * do not hold: it can simply run again. Others (nanosleep, timed polls) get EINTR.
		 */
		if (x->orig_ax == __NR_poll && (int32_t)x->dx < 0) {
			x->ax = x->orig_ax;
			x->ip -= SYSCALL_INSN_LEN;
		} else {
			x->ax = (uint64_t)-EINTR;
		}
		break;
	}
}

static int dump_gpregs(pid_t tid, ThreadCore *tc)
{
	struct arch_regs regs;
	X86Regs *x;
	int ret;

	ret = arch_regs_get(tid, &regs);
	if (ret)
		return ret;
	x = xmalloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	x86_regs__init(x);
#define X(img, kern) x->img = regs.r.kern;
	X86_REGS(X)
#undef X
	fixup_syscall_restart(x);
	tc->regs = x;
	return 0;
}

/* The whole XSAVE area (FPU, SSE, AVX, AVX-512, PKRU ...) in the kernel's standard format. */
static int dump_xsave(pid_t tid, ThreadCore *tc)
{
	size_t size = x86_xsave_size();
	struct iovec iov;
	void *buf;

	buf = xmalloc(size);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = size;
	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov)) {
		int ret = -errno;

		pr_perror("tid %d: cannot read the XSAVE area (NT_X86_XSTATE)", tid);
		free(buf);
		return ret;
	}
	/* The kernel sets iov_len to the size of its own XSAVE layout. */
	tc->xsave.data = buf;
	tc->xsave.len = iov.iov_len;
	tc->has_xsave = true;
	return 0;
}

int arch_dump_thread_regs(pid_t tid, ThreadCore *tc)
{
	int ret;

	ret = dump_gpregs(tid, tc);
	if (!ret)
		ret = dump_xsave(tid, tc);
	if (ret)
		arch_free_thread_regs(tc);
	return ret;
}

void arch_free_thread_regs(ThreadCore *tc)
{
	free(tc->regs);
	tc->regs = NULL;
	free(tc->xsave.data);
	tc->xsave.data = NULL;
	tc->xsave.len = 0;
	tc->has_xsave = false;
}

/*
 * fs_base and gs_base are part of user_regs_struct, so SETREGS brings TLS back too. The
 * restart fixup was applied at dump; orig_ax = -1 keeps the kernel from applying restart
 * logic a second time as the thread leaves its current stop.
 */
int arch_restore_thread_regs(pid_t tid, const ThreadCore *tc)
{
	struct arch_regs regs;
	struct iovec iov;
	int ret;

	if (!tc->regs) {
		pr_err("tid %d: the image holds no registers", tid);
		return -EINVAL;
	}
#define X(img, kern) regs.r.kern = tc->regs->img;
	X86_REGS(X)
#undef X
	regs.r.orig_rax = (unsigned long long)-1;
	ret = arch_regs_set(tid, &regs);
	if (ret || !tc->has_xsave)
		return ret;
	iov.iov_base = tc->xsave.data;
	iov.iov_len = tc->xsave.len;
	if (ptrace(PTRACE_SETREGSET, tid, (void *)NT_X86_XSTATE, &iov)) {
		ret = -errno;
		pr_perror("tid %d: cannot write the XSAVE area (%zu bytes)", tid, tc->xsave.len);
		return ret;
	}
	return 0;
}
