/*
 * Which processes of the frozen tree share one fd table (clone with CLONE_FILES) or one set
 * of cwd, root and umask (CLONE_FS) without being threads of one process. kcmp(2) with
 * KCMP_FILES / KCMP_FS compares the tasks' files_struct / fs_struct pointers (3.5).
 *
 * Restore can only rebuild what clone3 builds: a child shares the table (fs) its parent holds
 * at the moment of the clone. So a sharing group is accepted when every member but the first
 * in tree order (an ancestor of all the others) has its parent in the group. Siblings that
 * share a table their parent no longer holds (it called unshare() after cloning them) are
 * refused, and so is a thread with a table or fs of its own (unshare() in a thread): restore
 * creates every thread with its process's (CLONE_FILES | CLONE_FS).
 */
#define LOG_PREFIX "pstree: "
#include "core/pstree.h"

#include <errno.h>

#include "util/kernel-compat.h"
#include "util/log.h"

static pid_t *owner_of(struct pstree_proc *p, int type)
{
	return type == KCMP_FILES ? &p->files_owner : &p->fs_owner;
}

/* What is shared, for messages: "fd table" or "cwd, root and umask". */
static const char *what_of(int type)
{
	return type == KCMP_FILES ? "fd table" : "cwd, root and umask";
}

static const char *flag_of(int type)
{
	return type == KCMP_FILES ? "CLONE_FILES" : "CLONE_FS";
}

/* 0: the same object, 1: not the same, or -errno after logging. */
static int kcmp_differs(pid_t a, pid_t b, int type)
{
	int r = sys_kcmp(a, b, type, 0, 0);

	if (r < 0)
		return pr_errno(-errno, "pid %d, pid %d: kcmp failed", a, b);
	return r != 0;
}

static int check_threads(const struct pstree_proc *p, int type)
{
	for (size_t t = 1; t < p->nr_threads; t++) {
		int r = kcmp_differs(p->pid, p->threads[t], type);

		if (r > 0) {
			pr_err("pid %d: thread %d has its own %s (unshare(%s) in a thread): cannot checkpoint that",
			       p->pid, p->threads[t], what_of(type), flag_of(type));
			return -EOPNOTSUPP;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* p shares with pid with, whose group's first process is *owner_of(p): is its parent in it? */
static int check_shape(struct pstree *tree, struct pstree_proc *p, int type, pid_t with)
{
	struct pstree_proc *parent = pstree_find(tree, p->ppid);
	pid_t owner = *owner_of(p, type);

	if (parent && (parent->pid == owner || *owner_of(parent, type) == owner))
		return 0;
	pr_err("pid %d shares its %s with pid %d (%s), but its parent %d does not: crest can only restore what a parent shares with its children",
	       p->pid, what_of(type), with, flag_of(type), p->ppid);
	return -EOPNOTSUPP;
}

/* Sets *owner_of(tree->procs[i]) to the first earlier process sharing with it, if any. */
static int find_owner(struct pstree *tree, size_t i, int type)
{
	struct pstree_proc *p = &tree->procs[i];

	for (size_t j = 0; j < i; j++) {
		struct pstree_proc *q = &tree->procs[j];
		int r;

		if (q->zombie)
			continue;
		r = kcmp_differs(p->pid, q->pid, type);
		if (r < 0)
			return r;
		if (r)
			continue;
		*owner_of(p, type) = *owner_of(q, type) ? *owner_of(q, type) : q->pid;
		return check_shape(tree, p, type, q->pid);
	}
	return 0;
}

int pstree_find_sharing(struct pstree *tree)
{
	static const int types[] = { KCMP_FILES, KCMP_FS };

	for (size_t i = 0; i < tree->nr; i++) {
		if (tree->procs[i].zombie)	/* a zombie has neither: exit dropped them */
			continue;
		for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
			int ret = check_threads(&tree->procs[i], types[k]);

			if (!ret)
				ret = find_owner(tree, i, types[k]);
			if (ret)
				return ret;
		}
	}
	return 0;
}
