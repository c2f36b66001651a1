/*
 * The bootstrap region of a process being restored: the restorer blob, its argument block
 * and one stack per thread, placed where neither crest nor the restored layout has anything.
 *
 *   [ blob (r-x) | rst_args, rst_vma[], rst_thread[], auxv (rw-) | stacks (rw-) ]
 */
#define LOG_PREFIX "restore: "
#include "core/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/arch.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL
/* The top of the 47-bit user address space: everything crest has lies below it. */
#define TASK_SIZE_47 0x7ffffffff000ULL

struct bootstrap_layout {
	uint64_t blob_len;	/* code, page aligned */
	uint64_t args_off;
	uint64_t vmas_off;
	uint64_t threads_off;
	uint64_t auxv_off;
	uint64_t siginfo_off;
	uint64_t stacks_off;
	uint64_t len;
};

static size_t count_siginfo(const struct rproc *rp)
{
	size_t n = rp->core->n_shared_siginfo;

	for (size_t i = 0; i < rp->nr_threads; i++)
		n += rp->threads[i]->n_siginfo;
	return n;
}

static void plan_layout(const struct rproc *rp, const struct mem_premap *pm,
			struct bootstrap_layout *l)
{
	l->blob_len = ALIGN_UP((uint64_t)(restorer_blob_end - restorer_blob), PAGE);
	l->args_off = l->blob_len;
	l->vmas_off = l->args_off + ALIGN_UP(sizeof(struct rst_args), 64);
	l->threads_off = l->vmas_off + ALIGN_UP(pm->nr_vmas * sizeof(struct rst_vma), 64);
	l->auxv_off = l->threads_off + ALIGN_UP(rp->nr_threads * sizeof(struct rst_thread), 64);
	l->siginfo_off = ALIGN_UP(l->auxv_off + rp->map.mm->n_auxv * sizeof(uint64_t), 64);
	l->stacks_off = ALIGN_UP(l->siginfo_off + count_siginfo(rp) * RST_SIGINFO_SIZE, PAGE);
	l->len = l->stacks_off + rp->nr_threads * RST_STACK_SIZE;
}

/*
 * Outside the final layout and outside the premap area, which has holes now and goes whole
 * at the end of the restorer, from under the restorer if it were there.
 */
static int map_bootstrap(const struct rproc *rp, const struct mem_premap *pm,
			 const struct bootstrap_layout *l, char **ret)
{
	struct mem_range *avoid = NULL;
	size_t nr = 0, cap = 0;
	uint64_t addr;
	int err = mem_map_ranges(&rp->map, &avoid, &nr, &cap);

	if (!err)
		err = xgrow((void **)&avoid, &cap, nr + 1, sizeof(*avoid));
	if (!err) {
		avoid[nr++] = (struct mem_range){ pm->area_start, pm->area_start + pm->area_len };
		err = mem_reserve_free(avoid, nr, l->len, &addr);
	}
	free(avoid);
	if (err)
		return err;
	if (mmap((void *)addr, l->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0) == MAP_FAILED)
		return pr_errno(-errno, "pid %d: cannot map the restorer region", rp->pe->pid);
	memcpy((void *)addr, restorer_blob, restorer_blob_end - restorer_blob);
	if (mprotect((void *)addr, l->blob_len, PROT_READ | PROT_EXEC))
		return pr_errno(-errno, "pid %d: cannot make the restorer executable", rp->pe->pid);
	*ret = (char *)addr;
	return 0;
}

/* Copies n siginfos to *cursor (each padded or cut to the kernel's size); returns where. */
static uint64_t copy_siginfo(char **cursor, const ProtobufCBinaryData *info, size_t n)
{
	uint64_t start = (uint64_t)*cursor;

	for (size_t i = 0; i < n; i++, *cursor += RST_SIGINFO_SIZE)
		memcpy(*cursor, info[i].data, MIN(info[i].len, (size_t)RST_SIGINFO_SIZE));
	return start;
}

static void fill_threads(const struct rproc *rp, char *base, const struct bootstrap_layout *l,
			 char **siginfo)
{
	struct rst_thread *th = (struct rst_thread *)(base + l->threads_off);

	for (size_t i = 0; i < rp->nr_threads; i++) {
		const ThreadCore *tc = rp->threads[i];

		th[i].tid = tc->tid;
		th[i].clear_tid_addr = tc->has_clear_tid_addr ? tc->clear_tid_addr : 0;
		if (tc->rseq) {
			th[i].rseq_ptr = tc->rseq->ptr;
			th[i].rseq_size = tc->rseq->size;
			th[i].rseq_sig = tc->rseq->sig;
		}
		if (tc->comm)
			strncpy(th[i].comm, tc->comm, sizeof(th[i].comm) - 1);
		th[i].stack_top = (uint64_t)base + l->stacks_off + (i + 1) * RST_STACK_SIZE;
		th[i].nr_siginfo = tc->n_siginfo;
		th[i].siginfo = copy_siginfo(siginfo, tc->siginfo, tc->n_siginfo);
	}
}

static void fill_mm(const struct rproc *rp, struct rst_args *args, uint64_t *auxv)
{
	const MmCore *mm = rp->map.mm;

	args->mm = (struct rst_mm_map){
		.start_code = mm->start_code, .end_code = mm->end_code,
		.start_data = mm->start_data, .end_data = mm->end_data,
		.start_brk = mm->start_brk, .brk = mm->brk, .start_stack = mm->start_stack,
		.arg_start = mm->arg_start, .arg_end = mm->arg_end,
		.env_start = mm->env_start, .env_end = mm->env_end,
		.auxv = (uint64_t)auxv, .auxv_size = mm->n_auxv * sizeof(uint64_t),
		.exe_fd = (uint32_t)-1,
	};
	memcpy(auxv, mm->auxv, mm->n_auxv * sizeof(uint64_t));
	args->exe_fd = -1;
}

/*
 * Every catchable signal is set: the dump lists only those not at SIG_DFL, and the others
 * must not keep what the process inherited from crest (a SIG_IGN crest was started with,
 * glibc's handlers for its internal signals once crest runs a thread).
 */
static void fill_sigactions(const struct rproc *rp, struct rst_args *args)
{
	args->sigaction_mask = ~0ULL >> (64 - RST_NSIG);
	args->sigaction_mask &= ~(1ULL << (SIGKILL - 1) | 1ULL << (SIGSTOP - 1));
	for (size_t i = 0; i < rp->core->n_sigactions; i++) {
		const SigactionEntry *sa = rp->core->sigactions[i];

		if (sa->sig < 1 || sa->sig > RST_NSIG)
			continue;
		args->sigactions[sa->sig - 1] = (struct rst_sigaction){
			sa->handler, sa->flags, sa->restorer, sa->mask };
		args->sigaction_mask |= 1ULL << (sa->sig - 1);
	}
}

/* glibc registered an rseq area for this thread inside memory the restorer will unmap. */
static void fill_self_rseq(struct rst_args *args)
{
	if (!__rseq_size)
		return;
	args->self_rseq_ptr = (uint64_t)__builtin_thread_pointer() + __rseq_offset;
	args->self_rseq_size = __rseq_size < 32 ? 32 : __rseq_size;
	args->self_rseq_sig = RSEQ_SIG;
}

static void fill_keep(struct restore_ctx *ctx, struct rst_args *args, char *base,
		      const struct bootstrap_layout *l, const struct mem_premap *pm)
{
	args->keep[0] = (struct rst_range){ (uint64_t)base, l->len };
	args->keep[1] = (struct rst_range){ pm->area_start, pm->area_len };
	args->keep[2] = (struct rst_range){ (uint64_t)ctx->ctl, ctx->ctl_len };
	args->nr_keep = 3;
	args->premap_start = pm->area_start;
	args->premap_len = pm->area_len;
}

int restore_prepare_restorer(struct restore_ctx *ctx, struct rproc *rp,
			     const struct mem_premap *pm, struct rst_args **ret_args)
{
	struct bootstrap_layout l;
	struct rst_args *args;
	char *base = NULL, *siginfo;
	int err;

	plan_layout(rp, pm, &l);
	err = map_bootstrap(rp, pm, &l, &base);
	if (err)
		return err;
	args = (struct rst_args *)(base + l.args_off);
	args->magic = RST_ARGS_MAGIC;
	args->version = RST_ARGS_VERSION;
	args->pid = rp->pe->pid;
	fill_keep(ctx, args, base, &l, pm);
	memcpy(base + l.vmas_off, pm->vmas, pm->nr_vmas * sizeof(struct rst_vma));
	args->vmas = (uint64_t)base + l.vmas_off;
	args->nr_vmas = pm->nr_vmas;
	siginfo = base + l.siginfo_off;
	fill_threads(rp, base, &l, &siginfo);
	args->nr_shared_siginfo = rp->core->n_shared_siginfo;
	args->shared_siginfo = copy_siginfo(&siginfo, rp->core->shared_siginfo,
					    rp->core->n_shared_siginfo);
	args->threads = (uint64_t)base + l.threads_off;
	args->nr_threads = rp->nr_threads;
	args->vdso_addr = pm->vdso_addr;
	args->vdso_text = pm->vdso_text;
	fill_mm(rp, args, (uint64_t *)(base + l.auxv_off));
	fill_sigactions(rp, args);
	fill_self_rseq(args);
	args->ctl = (uint64_t)ctx->ctl;
	args->task_size = TASK_SIZE_47;
	ctx->slots[rp->idx].bootstrap_start = (uint64_t)base;
	ctx->slots[rp->idx].bootstrap_len = l.len;
	*ret_args = args;
	return 0;
}

__attribute__((noreturn)) void restore_jump(struct restore_ctx *ctx, struct rproc *rp,
					    struct rst_args *args)
{
	const char *exe = rp->map.mm->exe;
	struct rst_thread *main_thread = (struct rst_thread *)args->threads;
	uint64_t all = ~0ULL;

	args->exe_fd = exe ? open(exe, O_RDONLY | O_CLOEXEC) : -1;
	if (exe && args->exe_fd < 0)
		pr_warn("pid %d: cannot open %s: /proc/%d/exe will name crest's binary: %s",
			rp->pe->pid, exe, rp->pe->pid, strerror(errno));
	args->mm.exe_fd = args->exe_fd >= 0 ? (uint32_t)args->exe_fd : (uint32_t)-1;
	/* Raw: glibc's sigprocmask never blocks 32 and 33, which it keeps for itself. */
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all));
	/* Nothing of crest may stay open in the restored process: its log goes first. */
	restore_leave_table(ctx, rp);
	arch_jump_to_restorer(args->keep[0].start, main_thread->stack_top, (uint64_t)args);
}
