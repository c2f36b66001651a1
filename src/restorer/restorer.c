/*
 * The restorer: the last of crest that runs in each restored process.
 *
 * crest jumps here (entry.S) on thread 0's restorer stack with every signal blocked, after it
 * premapped the target's memory and filled struct rst_args (restorer/restorer.h). From the
 * first step on, no libc and no crest mapping exist any more; this code lives in the bootstrap
 * region, which is position independent and never moves. Each step below is one function, run
 * in the order of enum rst_step. A failing step records itself in the shared struct rst_ctl and
 * ends the process; a thread that finishes parks itself for the controller, which loads its
 * registers with ptrace and removes the bootstrap region. So nothing here ever returns.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/errno.h>
#include <linux/futex.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/rseq.h>
#include <linux/sched.h>

#include "restorer/restorer.h"
#include "restorer/sys.h"

#define RST_PAGE_MASK	(~(RST_PAGE_SIZE - 1))

/* The kernel's checks for PR_SET_MM_MAP and rt_sigaction() are size checks on exactly these. */
_Static_assert(sizeof(struct rst_mm_map) == 104, "struct rst_mm_map is not struct prctl_mm_map");
_Static_assert(sizeof(struct rst_sigaction) == 32, "struct rst_sigaction is not the kernel's");

/* Called from entry.S, on thread 0's restorer stack. */
__attribute__((noreturn)) void rst_main(struct rst_args *args);

static struct rst_ctl *ctl_of(const struct rst_args *args)
{
	return RST_PTR(args->ctl);
}

static struct rst_thread *threads_of(const struct rst_args *args)
{
	return RST_PTR(args->threads);
}

static struct rst_vma *vmas_of(const struct rst_args *args)
{
	return RST_PTR(args->vmas);
}

static bool overlaps(uint64_t s1, uint64_t l1, uint64_t s2, uint64_t l2)
{
	return s1 < s2 + l2 && s2 < s1 + l1;
}

/*
 * Records a failure in the shared rst_ctl and ends this process (every thread of it).
 *
 * error is the claim: only the first failure of the whole restore, in any process, swings it
 * from 0, and only that one writes error_pid, error_step and error_addr. The futex wake on
 * threads_parked lets a controller sleeping there see the error at once instead of at its
 * timeout; it would see the process exit too, but not as quickly from every place it waits.
 */
static __attribute__((noreturn)) void rst_fail(const struct rst_args *args, enum rst_step step,
					      long err, uint64_t addr)
{
	struct rst_ctl *ctl = ctl_of(args);
	int32_t none = 0;

	if (err >= 0)
		err = -EINVAL;
	if (__atomic_compare_exchange_n(&ctl->error, &none, (int32_t)err, false,
					__ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
		ctl->error_pid = (uint32_t)sys_gettid();
		ctl->error_step = step;
		ctl->error_addr = addr;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	sys_futex(&ctl->threads_parked, FUTEX_WAKE, INT32_MAX, NULL);
	sys_exit_group(1);
}

/* A stale or foreign argument block would make every later step do damage: refuse it. */
static void check_args(const struct rst_args *args)
{
	if (args->magic != RST_ARGS_MAGIC || args->version != RST_ARGS_VERSION ||
	    args->nr_keep > RST_MAX_KEEP || args->nr_threads == 0 ||
	    args->task_size & ~RST_PAGE_MASK)
		rst_fail(args, RST_STEP_NONE, -EINVAL, 0);
}

/*
 * crest's glibc registered an rseq area in its own TLS, which step 2 unmaps. With the
 * registration left in place, the kernel would write cpu_id into that area on the next return
 * to user space (rseq_handle_notify_resume) and kill the task with SIGSEGV when it is gone.
 * RSEQ_FLAG_UNREGISTER needs the exact pointer, length and signature of the registration.
 */
static void rseq_unregister(const struct rst_args *args)
{
	long ret;

	if (!args->self_rseq_size)
		return;
	ret = sys_rseq(args->self_rseq_ptr, args->self_rseq_size, RSEQ_FLAG_UNREGISTER,
		       args->self_rseq_sig);
	if (ret)
		rst_fail(args, RST_STEP_RSEQ_UNREGISTER, ret, args->self_rseq_ptr);
}

/*
 * Copies the keep ranges, widened to whole pages (munmap() wants an aligned start), sorted by
 * start. There are at most RST_MAX_KEEP, so an insertion sort is plenty.
 */
static void sorted_keep(const struct rst_args *args, struct rst_range *keep)
{
	uint32_t i, j;

	for (i = 0; i < args->nr_keep; i++) {
		uint64_t start = args->keep[i].start & RST_PAGE_MASK;
		uint64_t end = (args->keep[i].start + args->keep[i].len + RST_PAGE_SIZE - 1) &
			       RST_PAGE_MASK;

		for (j = i; j > 0 && keep[j - 1].start > start; j--)
			keep[j] = keep[j - 1];
		keep[j].start = start;
		keep[j].len = end - start;
	}
}

static void unmap_range(const struct rst_args *args, uint64_t start, uint64_t end)
{
	long ret = sys_munmap(start, end - start);

	if (ret)
		rst_fail(args, RST_STEP_UNMAP, ret, start);
}

/*
 * Removes every mapping of crest (its binary, libc, heap, stack, vDSO and vvar) by unmapping
 * each gap between the keep ranges over [0, task_size). munmap() of a range with nothing in
 * it succeeds, so the gaps need not be known. Afterwards only the keep ranges (and
 * [vsyscall], above task_size) remain; this function's own code and stack are in them.
 */
static void unmap_crest(const struct rst_args *args)
{
	struct rst_range keep[RST_MAX_KEEP];
	uint64_t cursor = 0;
	uint32_t i;

	sorted_keep(args, keep);
	for (i = 0; i < args->nr_keep && cursor < args->task_size; i++) {
		uint64_t start = keep[i].start, end = start + keep[i].len;

		if (start > cursor)
			unmap_range(args, cursor, start < args->task_size ? start : args->task_size);
		if (end > cursor)
			cursor = end;
	}
	if (cursor < args->task_size)
		unmap_range(args, cursor, args->task_size);
}

/*
 * MREMAP_FIXED silently unmaps whatever lies at the destination, so a bad final address would
 * tear out the bootstrap region (this code), the premap area or the ctl page without any
 * error. And a premap address outside the premap area can only be stale. Check both first.
 * Returns 0 or -EINVAL, with *addr set to the offending address.
 */
static long check_vma(const struct rst_args *args, const struct rst_vma *v, uint64_t *addr)
{
	uint32_t i;

	*addr = v->start;
	if (!v->len || (v->start | v->len) & ~RST_PAGE_MASK || v->start + v->len < v->start ||
	    v->start + v->len > args->task_size)
		return -EINVAL;
	for (i = 0; i < args->nr_keep; i++)
		if (overlaps(v->start, v->len, args->keep[i].start, args->keep[i].len))
			return -EINVAL;

	*addr = v->premap;
	if (v->premap & ~RST_PAGE_MASK || v->premap < args->premap_start ||
	    v->premap + v->len < v->premap ||
	    v->premap + v->len > args->premap_start + args->premap_len)
		return -EINVAL;
	return 0;
}

/*
 * Moves each premapped area, contents and all, to its final address. mremap() moves the page
 * tables, not the data, and fails with EFAULT if [premap, premap + len) is not one mapping.
 * Whatever crest left in the premap area afterwards goes too.
 */
static void remap_vmas(const struct rst_args *args)
{
	const struct rst_vma *vmas = vmas_of(args);
	uint64_t addr;
	uint32_t i;
	long ret;

	for (i = 0; i < args->nr_vmas; i++) {
		const struct rst_vma *v = &vmas[i];

		ret = check_vma(args, v, &addr);
		if (ret)
			rst_fail(args, RST_STEP_REMAP, ret, addr);
		ret = sys_mremap(v->premap, v->len, v->len, MREMAP_MAYMOVE | MREMAP_FIXED,
				 v->start);
		if (ret < 0 || (uint64_t)ret != v->start)
			rst_fail(args, RST_STEP_REMAP, ret < 0 ? ret : -EFAULT, v->start);
	}
	if (args->premap_len) {
		ret = sys_munmap(args->premap_start, args->premap_len);
		if (ret)
			rst_fail(args, RST_STEP_REMAP, ret, args->premap_start);
	}
}

/* crest premapped everything read-write to fill it; now each area gets its real protection. */
static void protect_vmas(const struct rst_args *args)
{
	const struct rst_vma *vmas = vmas_of(args);
	uint32_t i;
	long ret;

	for (i = 0; i < args->nr_vmas; i++) {
		ret = sys_mprotect(vmas[i].start, vmas[i].len, vmas[i].prot);
		if (ret)
			rst_fail(args, RST_STEP_PROTECT, ret, vmas[i].start);
	}
}

/* mincore() of one page fails with ENOMEM exactly when nothing is mapped there. */
static bool page_mapped(uint64_t addr)
{
	unsigned char vec;

	return sys_mincore(addr & RST_PAGE_MASK, RST_PAGE_SIZE, &vec) == 0;
}

/*
 * Maps the vDSO block where the target had it: its code and the pointers glibc keeps into it
 * (the clock_gettime it resolved) expect that address. ARCH_MAP_VDSO_64 only takes the address
 * as a hint (get_unmapped_area() without MAP_FIXED) and returns the text size (8192 on 6.18),
 * not where the block went: with part of the range in use it silently maps it elsewhere. So
 * the first page of the block and of the text must be free before and mapped after, and only
 * then (reading an unmapped page would kill us with no report) the text must start with the
 * vDSO's ELF header, which no vvar page does. A misplaced block cannot be moved back by a
 * second call (EEXIST while any vDSO is mapped): fail.
 */
static void map_vdso(const struct rst_args *args)
{
	static const unsigned char elf_magic[4] = { 0x7f, 'E', 'L', 'F' };
	const unsigned char *text = RST_PTR(args->vdso_text);
	long ret, i;

	if (!args->vdso_addr)
		return;
	if (args->vdso_text < args->vdso_addr ||
	    (args->vdso_addr | args->vdso_text) & ~RST_PAGE_MASK)
		rst_fail(args, RST_STEP_VDSO, -EINVAL, args->vdso_text);
	if (page_mapped(args->vdso_addr) || page_mapped(args->vdso_text))
		rst_fail(args, RST_STEP_VDSO, -EEXIST, args->vdso_addr);

	ret = rst_arch_map_vdso(args->vdso_addr);
	if (ret < 0)
		rst_fail(args, RST_STEP_VDSO, ret, args->vdso_addr);
	if (!page_mapped(args->vdso_addr) || !page_mapped(args->vdso_text))
		rst_fail(args, RST_STEP_VDSO, -EADDRNOTAVAIL, args->vdso_text);
	for (i = 0; i < 4; i++)
		if (text[i] != elf_magic[i])
			rst_fail(args, RST_STEP_VDSO, -EADDRNOTAVAIL, args->vdso_text);
}

/*
 * Sets code, data, brk, stack, argument, environment and auxv fields of the mm in one
 * PR_SET_MM_MAP, and the /proc/PID/exe link if exe_fd >= 0. The kernel refuses a new exe
 * (EBUSY) while the old exe file is still mapped anywhere: it was, until unmap_crest().
 * args->exe_fd is the one source of truth for the exe: copied into mm.exe_fd, where the
 * kernel's "leave it" value is (u32)-1.
 */
static void set_mm(struct rst_args *args)
{
	long ret;

	args->mm.exe_fd = (uint32_t)args->exe_fd;
	ret = sys_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)&args->mm, sizeof(args->mm), 0);
	if (ret)
		rst_fail(args, RST_STEP_MM, ret, 0);
	if (args->exe_fd >= 0) {
		ret = sys_close(args->exe_fd);
		if (ret)
			rst_fail(args, RST_STEP_MM, ret, 0);
	}
}

/* Handlers are per process, so thread 0 sets them once. error_addr is the signal number. */
static void restore_sigactions(const struct rst_args *args)
{
	int sig;
	long ret;

	for (sig = 1; sig <= RST_NSIG; sig++) {
		if (!(args->sigaction_mask & (1ULL << (sig - 1))))
			continue;
		ret = sys_rt_sigaction(sig, &args->sigactions[sig - 1], NULL, sizeof(uint64_t));
		if (ret)
			rst_fail(args, RST_STEP_SIGACTION, ret, sig);
	}
}

/*
 * The last steps of every thread, each in its own context because the kernel keeps them per
 * task: clear_child_tid, the rseq registration (clone3 with CLONE_VM gives a child none) and
 * comm. set_tid_address() cannot fail (it returns the tid), and is called with 0 too, to drop
 * whatever crest's libc had set for thread 0.
 */
static void set_thread_state(const struct rst_args *args, const struct rst_thread *t)
{
	long ret;

	sys_set_tid_address(t->clear_tid_addr);
	if (t->rseq_size) {
		ret = sys_rseq(t->rseq_ptr, t->rseq_size, 0, t->rseq_sig);
		if (ret)
			rst_fail(args, RST_STEP_THREAD_STATE, ret, t->rseq_ptr);
	}
	ret = sys_prctl(PR_SET_NAME, (long)t->comm, 0, 0, 0);
	if (ret)
		rst_fail(args, RST_STEP_THREAD_STATE, ret, (uintptr_t)t->comm);
}

/*
 * Tells the controller this thread is done, then waits for it forever. threads_parked is
 * woken with a shared (not FUTEX_PRIVATE) wake: the controller is another process that maps
 * the same page. The controller PTRACE_SEIZEs and interrupts the thread inside the futex wait
 * below, loads its registers and removes the bootstrap region; the wait is on a private word
 * on this thread's stack that nobody changes, so any wakeup just waits again.
 */
static __attribute__((noreturn)) void park(const struct rst_args *args)
{
	struct rst_ctl *ctl = ctl_of(args);
	uint32_t never = 0;

	__atomic_fetch_add(&ctl->threads_parked, 1, __ATOMIC_SEQ_CST);
	sys_futex(&ctl->threads_parked, FUTEX_WAKE, INT32_MAX, NULL);
	for (;;)
		sys_futex(&never, FUTEX_WAIT_PRIVATE, 0, NULL);
}

/*
 * Pending signals go back in the order they were queued. The kernel lets a task queue a
 * siginfo with any si_code (a kernel- or kill()-made one included) only to itself: so each
 * thread queues its own, and thread 0, which has the process's pid, the process-wide ones.
 * Signals are blocked here, so they stay pending until the controller sets the real mask.
 */
static void queue_signals(const struct rst_args *args, const struct rst_thread *t, bool leader)
{
	const char *info = RST_PTR(t->siginfo);
	uint32_t i;
	long ret;

	for (i = 0; i < t->nr_siginfo; i++, info += RST_SIGINFO_SIZE) {
		ret = sys_rt_tgsigqueueinfo((int)args->pid, (int)t->tid, *(const int *)info, info);
		if (ret)
			rst_fail(args, RST_STEP_SIGPENDING, ret, (uint64_t)*(const int *)info);
	}
	info = RST_PTR(args->shared_siginfo);
	for (i = 0; leader && i < args->nr_shared_siginfo; i++, info += RST_SIGINFO_SIZE) {
		ret = sys_rt_sigqueueinfo((int)args->pid, *(const int *)info, info);
		if (ret)
			rst_fail(args, RST_STEP_SIGPENDING, ret, (uint64_t)*(const int *)info);
	}
}

static __attribute__((noreturn)) void finish_thread(const struct rst_args *args,
						   const struct rst_thread *t)
{
	set_thread_state(args, t);
	queue_signals(args, t, t == &threads_of(args)[0]);
	park(args);
}

/* First C code of a thread made by create_thread(), on its own restorer stack. */
static void thread_entry(void *args, void *thread)
{
	finish_thread(args, thread);
}

/*
 * Creates one more thread of this process with its original tid. clone3's set_tid needs
 * CAP_CHECKPOINT_RESTORE over the pid namespace and fails with EEXIST if the tid is taken. No
 * CLONE_SETTLS: the thread keeps this thread's fs base until the controller loads its own;
 * nothing here uses TLS. Signals stay blocked: the child inherits this thread's mask.
 */
static void create_thread(const struct rst_args *args, struct rst_thread *t)
{
	int32_t tid = (int32_t)t->tid;
	struct clone_args ca = {
		.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			 CLONE_SYSVSEM,
		.exit_signal = 0,
		.stack = t->stack_top - RST_STACK_SIZE,
		.stack_size = RST_STACK_SIZE,
		.set_tid = (uintptr_t)&tid,
		.set_tid_size = 1,
	};
	long ret;

	ret = rst_clone3_thread(&ca, sizeof(ca), thread_entry, (void *)args, t);
	if (ret < 0)
		rst_fail(args, RST_STEP_THREADS, ret, t->tid);
	if (ret != tid)
		rst_fail(args, RST_STEP_THREADS, -ESRCH, t->tid);
}

/* Only after the process-wide state is in place: the threads park as soon as they exist. */
static void create_threads(const struct rst_args *args)
{
	struct rst_thread *threads = threads_of(args);
	uint32_t i;

	for (i = 1; i < args->nr_threads; i++)
		create_thread(args, &threads[i]);
}

void rst_main(struct rst_args *args)
{
	check_args(args);
	rseq_unregister(args);
	unmap_crest(args);
	remap_vmas(args);
	protect_vmas(args);
	map_vdso(args);
	set_mm(args);
	restore_sigactions(args);
	create_threads(args);
	finish_thread(args, &threads_of(args)[0]);
}
