/* The process tree being dumped: every process and thread, found and frozen. */
#ifndef CREST_CORE_PSTREE_H
#define CREST_CORE_PSTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pstree_proc {
	pid_t pid;
	pid_t ppid;
	pid_t pgid;
	pid_t sid;
	pid_t *threads;		/* seized threads, the leader first */
	size_t nr_threads, cap_threads;
	bool zombie;
	int exit_status;	/* zombies: the wait(2) status */
	char comm[16];		/* zombies: the name, /proc/PID/comm */
	pid_t files_owner;	/* first process sharing its fd table (CLONE_FILES); 0: own */
	pid_t fs_owner;		/* first process sharing its cwd, root, umask (CLONE_FS); 0: own */
};

struct pstree {
	struct pstree_proc *procs;	/* parents before children; [0] is the root */
	size_t nr, cap;
};

/*
 * Seizes every thread of the tree rooted at root, rescanning until no new thread or child
 * appears. Each thread gets up to timeout_ms to stop. On failure every thread seized so far is
 * released, so the tree runs on as before.
 */
int pstree_freeze(pid_t root, int timeout_ms, struct pstree *ret);
/* Lets every thread run on exactly as before. */
void pstree_release(struct pstree *tree);
void pstree_release_proc(struct pstree_proc *p);
/* Kills every process of the tree (after a successful dump)... */
void pstree_kill(struct pstree *tree);
/* ...and waits until every one of its threads is gone. */
void pstree_wait_killed(struct pstree *tree);
void pstree_free(struct pstree *tree);
struct pstree_proc *pstree_find(struct pstree *tree, pid_t pid);
/*
 * Sets files_owner and fs_owner of every live process of the frozen tree (pstree-share.c);
 * refuses, naming the pids, sharing that restore cannot rebuild: a sharer that neither its
 * parent nor a sibling could have been cloned by, and a thread with an fd table or fs of its
 * own.
 */
int pstree_find_sharing(struct pstree *tree);

#endif
