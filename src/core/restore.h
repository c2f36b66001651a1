/*
 * Restore: shared between the controlling `crest restore` (restore.c) and the code that runs
 * in each process being restored before it jumps to the restorer (restore-task.c).
 */
#ifndef CREST_CORE_RESTORE_H
#define CREST_CORE_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"
#include "core/stats.h"
#include "inventory.pb-c.h"
#include "mem/mem.h"
#include "ns.pb-c.h"
#include "pstree.pb-c.h"
#include "restorer/restorer.h"

struct crest_opts;
struct img_dir;
struct files_restore;

/*
 * Crest-side stages every restored process goes through together. Each ends at a barrier
 * counted by the controller, which then lets everyone into the next.
 */
enum restore_stage {
	/* Forked with its pid (clone3 set_tid), session and group set; zombies exit after. */
	RS_CREATE = 1,
	/* Each process created the descriptions and shmem objects it owns, at service fds. */
	RS_OWN,
	/* Each took its shared objects from their owners (pidfd_getfd) and premapped its
	 * memory; owners may close service fds only after this. */
	RS_TAKE,
	/* Past this point processes are in the restorer; the controller counts parked threads. */
	RS_RESTORER,
};

/* One process to restore, read from the image by the controller before anything is created. */
struct rproc {
	PstreeEntry *pe;
	TaskCore *core;			/* NULL for zombies */
	ThreadCore **threads;		/* [0] is the thread-group leader */
	size_t nr_threads;
	struct mem_map map;
	struct rproc *parent;
	/* Who clones it: its parent, or a sibling (CLONE_PARENT) holding what it shares. */
	struct rproc *creator;
	struct rproc **children;	/* the processes it clones (creator == this one) */
	size_t nr_children;
	size_t idx;			/* position in restore_ctx.procs and in the slots */
	uint64_t clone_flags;		/* CLONE_NEW* it is created with (the root's own ns) */
	/*
	 * CLONE_FILES / CLONE_FS: it shares its creator's fd table / cwd, root and umask;
	 * CLONE_PARENT: its creator is a sibling.
	 */
	uint64_t share_flags;
};

/* A shared memory object, created by its owner and taken by the others. */
struct rshmem {
	uint64_t ino;
	pid_t owner;
	const VmaEntry *vma;		/* one mapping of it (name and size) */
	uint32_t file_id;		/* nonzero: the object of this description (memfd) */
};

/* Per-process slot in the shared control area, written by the process itself. */
struct rst_slot {
	uint32_t pid;			/* set once created */
	uint32_t pad;
	uint64_t bootstrap_start;	/* where its restorer region is, for the final unmap */
	uint64_t bootstrap_len;
	uint64_t pages_bytes;		/* page data it read from the image, for the stats */
	/* Used in the slot of a table's owner (restore_table_owner()): */
	uint32_t table_ready;		/* 1 once the owner installed the fd table */
	uint32_t table_users;		/* processes of the table not yet in the restorer */
};

struct restore_ctx {
	const struct crest_opts *opts;
	struct img_dir *dir;
	const Inventory *inv;
	NsEntry *ns;			/* ns.img: the tree's own namespaces; NULL: none */
	struct rproc *procs;		/* pstree order: parents first */
	size_t nr_procs;
	size_t nr_live;			/* processes that are not zombies */
	size_t nr_threads;		/* threads of live processes */
	struct files_restore *files;
	struct rshmem *shmem;
	size_t nr_shmem;
	int svc_base;			/* service fds: files at svc_base + id - 1, then shmem */
	int log_fd_min;			/* where the log descriptor is moved */
	pid_t shell_pgid;		/* crest's own group, for shell jobs */
	uint64_t nofile_soft;		/* crest's RLIMIT_NOFILE soft limit, put back at the end */
	struct rst_ctl *ctl;		/* MAP_SHARED area: rst_ctl then slots[nr_procs] */
	struct rst_slot *slots;
	uint64_t ctl_len;
	struct stats stats;
	struct img_verify *verify;	/* page data being checked on a thread; NULL: none */
};

/* Runs in the freshly created process rp; never returns. */
__attribute__((noreturn)) void restore_task(struct restore_ctx *ctx, struct rproc *rp);
/*
 * Creates rp as a child of the caller with its pid (clone3 set_tid), in new namespaces of
 * rp->clone_flags, which it fills in (ns_restore_root) first thing; 0 or -errno.
 */
int restore_fork(struct restore_ctx *ctx, struct rproc *rp);
/* The process that restores rp's fd table: rp, or the first process of the group sharing it. */
struct rproc *restore_table_owner(struct rproc *rp);
/*
 * rp is done with crest code in its fd table: the last process of a shared table to leave
 * closes the log descriptor, which all of them write to through that one table.
 */
void restore_leave_table(struct restore_ctx *ctx, struct rproc *rp);
/* Reports a failure of this process to the controller and exits. */
__attribute__((noreturn)) void restore_fail(struct restore_ctx *ctx, int err);

/*
 * restorer-args.c: maps the bootstrap region (restorer blob, its arguments, thread stacks)
 * where neither crest nor the target has anything, and fills the arguments.
 */
int restore_prepare_restorer(struct restore_ctx *ctx, struct rproc *rp,
			     const struct mem_premap *pm, struct rst_args **ret_args);
/* Last step in crest code: opens the exe for PR_SET_MM, blocks signals, jumps. */
__attribute__((noreturn)) void restore_jump(struct restore_ctx *ctx, struct rproc *rp,
					    struct rst_args *args);

int crest_restore(const struct crest_opts *opts);

#endif
