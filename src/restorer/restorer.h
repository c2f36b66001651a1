/*
 * The argument block shared by crest and the restorer blob.
 *
 * crest (still a normal libc program, already the right pid with its files open) premaps every
 * target mapping with its contents at temporary addresses, fills one struct rst_args inside the
 * bootstrap region, and jumps to the blob. The blob, with no libc and no crest mapping left,
 * moves the mappings to their final addresses and finishes what only the task itself can do.
 * The controlling `crest restore` then loads each thread's registers with ptrace.
 *
 * Every address here is absolute and valid in the restored process: the bootstrap region never
 * moves. Only fixed-size types: this header is compiled freestanding too.
 */
#ifndef CREST_RESTORER_RESTORER_H
#define CREST_RESTORER_RESTORER_H

#include <stdint.h>

#define RST_ARGS_MAGIC   0x52535431u	/* "1TSR" */
#define RST_ARGS_VERSION 1

/* Stack of each restorer thread, inside the bootstrap region. */
#define RST_STACK_SIZE   (32 * 1024)
#define RST_MAX_KEEP     4
#define RST_NSIG         64

/* One target mapping, premapped by crest at premap with its contents, to move to start. */
struct rst_vma {
	uint64_t premap;	/* where crest mapped it, read-write */
	uint64_t start;		/* final address */
	uint64_t len;
	uint32_t prot;		/* final protection, applied after the move */
	uint32_t pad;
};

/* An address range. */
struct rst_range {
	uint64_t start;
	uint64_t len;
};

/* Per-thread state that only the thread itself can set. */
struct rst_thread {
	uint32_t tid;			/* created with this tid (clone3 set_tid), except thread 0 */
	uint32_t rseq_size;		/* 0: no rseq */
	uint64_t clear_tid_addr;	/* set_tid_address() */
	uint64_t rseq_ptr;
	uint32_t rseq_sig;
	uint32_t pad;
	char comm[16];			/* PR_SET_NAME */
	uint64_t stack_top;		/* top of this thread's restorer stack, 16-byte aligned */
	uint64_t siginfo;		/* address of RST_SIGINFO_SIZE-byte siginfos pending on it */
	uint32_t nr_siginfo;
	uint32_t pad2;
};

/* A siginfo_t as the kernel copies it (si_signo first). */
#define RST_SIGINFO_SIZE 128

/* The kernel's struct sigaction for rt_sigaction(2) on this arch. */
struct rst_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/* The kernel's struct prctl_mm_map (PR_SET_MM_MAP). */
struct rst_mm_map {
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv;		/* address of an auxv array */
	uint32_t auxv_size;	/* bytes */
	uint32_t exe_fd;
};

/*
 * Shared by the controlling `crest restore` and every restored process (a MAP_SHARED page at
 * the same address in all of them). Counters are futex words.
 */
struct rst_ctl {
	uint32_t threads_parked;	/* threads that finished the restorer and wait for ptrace */
	uint32_t stage;			/* crest-side restore stage (src/core/restore.c) */
	uint32_t stage_arrived;		/* processes that reached the current stage barrier */
	int32_t  error;			/* first failure, -errno; 0 if none */
	uint32_t error_pid;		/* who failed */
	uint32_t error_step;		/* enum rst_step where the restorer failed */
	uint64_t error_addr;		/* the address involved, if any */
	uint32_t abort;			/* set by the controller: every process exits */
	uint32_t pad;
};

/* Steps of the restorer, in order; reported in rst_ctl.error_step when one fails. */
enum rst_step {
	RST_STEP_NONE = 0,
	RST_STEP_RSEQ_UNREGISTER,	/* drop crest's own rseq area before it is unmapped */
	RST_STEP_UNMAP,			/* remove every crest mapping outside the keep ranges */
	RST_STEP_REMAP,			/* move premapped areas to their final addresses */
	RST_STEP_PROTECT,		/* final protections */
	RST_STEP_VDSO,			/* map the vDSO where the target had it */
	RST_STEP_MM,			/* PR_SET_MM_MAP: brk, stack, args, env, auxv, exe */
	RST_STEP_SIGACTION,		/* signal handlers */
	RST_STEP_THREADS,		/* clone3 with set_tid for every other thread */
	RST_STEP_THREAD_STATE,		/* per thread: clear_tid, rseq, name */
	RST_STEP_SIGPENDING,		/* queue the pending signals again, in order */
	RST_STEP_PARK,			/* done: wait for the controller */
};

struct rst_args {
	uint32_t magic;			/* RST_ARGS_MAGIC */
	uint32_t version;		/* RST_ARGS_VERSION */
	uint32_t pid;
	uint32_t nr_keep;
	struct rst_range keep[RST_MAX_KEEP];	/* never unmapped: bootstrap, premap area, ctl */
	uint64_t premap_start;		/* the premap area: unmapped after every vma moved */
	uint64_t premap_len;

	uint64_t vmas;			/* address of struct rst_vma[nr_vmas] */
	uint32_t nr_vmas;
	uint32_t nr_threads;
	uint64_t threads;		/* address of struct rst_thread[nr_threads]; [0] is the main one */

	uint64_t vdso_addr;		/* where the target's vDSO block (vvar first) began; 0: none */
	uint64_t vdso_text;		/* the target's [vdso] start, to check the result */

	struct rst_mm_map mm;
	int32_t exe_fd;			/* -1: leave the exe link */
	int32_t pad0;

	uint64_t sigaction_mask;	/* bit (sig - 1) set: restore sigactions[sig - 1] */
	struct rst_sigaction sigactions[RST_NSIG];

	/* crest's own rseq registration, to undo before its memory goes away. */
	uint64_t self_rseq_ptr;
	uint32_t self_rseq_size;
	uint32_t self_rseq_sig;

	uint64_t ctl;			/* address of struct rst_ctl */
	uint64_t task_size;		/* top of the user address space to sweep when unmapping */

	uint64_t shared_siginfo;	/* siginfos pending on the whole process */
	uint32_t nr_shared_siginfo;
	uint32_t pad1;
};

#endif
