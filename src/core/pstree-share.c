/*
 * Which processes of the frozen tree share one fd table (clone with CLONE_FILES) or one set
 * of cwd, root and umask (CLONE_FS) without being threads of one process. kcmp(2) with
 * KCMP_FILES / KCMP_FS compares the tasks' files_struct / fs_struct pointers (3.5).
 *
 * Restore can only rebuild what clone3 builds: a child shares the table (fs) that the process
 * cloning it holds at that moment. That is its parent, or a sibling cloning it with
 * CLONE_PARENT. So every sharer needs a creator: its parent, or a sibling before it in tree
 * order, holding everything it shares. A sibling also passes on its session (the child can
 * only leave it for one of its own) and its exit signal (clone3 takes none with
 * CLONE_PARENT), so those must match. Other shapes are refused, and so is a thread with a
 * table or fs of its own (unshare() in a thread): restore creates every thread with its
 * process's (CLONE_FILES | CLONE_FS).
 */
#define LOG_PREFIX "pstree: "
#include "core/pstree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

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

/* Whether a clone by c gives p the table (fs) p shares, or p has its own anyway. */
static bool gives(struct pstree_proc *c, struct pstree_proc *p, int type)
{
	pid_t owner = *owner_of(p, type);

	return !owner || owner == c->pid || owner == *owner_of(c, type);
}

/* Field 38 of /proc/PID/stat: the signal its parent gets when it exits; -1 if unknown. */
static int exit_signal_of(pid_t pid)
{
	char path[64], *buf, *p;
	int sig = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	p = buf ? strrchr(buf, ')') : NULL;
	/* comm may hold spaces: fields resume after the last ')'; p ends before field 38. */
	for (int field = 3; p && field <= 38; field++)
		p = strchr(p + 1, ' ');
	if (p)
		sig = atoi(p + 1);
	free(buf);
	return sig;
}

/* Whether sibling q (before p) can clone p with CLONE_PARENT, giving it what it shares. */
static bool sibling_can_create(struct pstree_proc *q, struct pstree_proc *p)
{
	return !q->zombie && q->ppid == p->ppid && (q->sid == p->sid || p->sid == p->pid) &&
	       gives(q, p, KCMP_FILES) && gives(q, p, KCMP_FS) &&
	       exit_signal_of(q->pid) == exit_signal_of(p->pid);
}

static int check_creatable(struct pstree *tree, size_t i)
{
	struct pstree_proc *p = &tree->procs[i], *parent = pstree_find(tree, p->ppid);
	int type = KCMP_FILES;

	if (!p->files_owner && !p->fs_owner)
		return 0;
	if (parent && gives(parent, p, KCMP_FILES) && gives(parent, p, KCMP_FS))
		return 0;
	for (size_t j = 0; j < i; j++)
		if (sibling_can_create(&tree->procs[j], p))
			return 0;
	if (parent && gives(parent, p, KCMP_FILES))
		type = KCMP_FS;
	pr_err("pid %d shares its %s with pid %d (%s), but neither its parent %d nor a sibling in its session with its exit signal has all it shares: cannot checkpoint that",
	       p->pid, what_of(type), *owner_of(p, type), flag_of(type), p->ppid);
	return -EOPNOTSUPP;
}

/* Sorting the live processes by the object they use: kcmp() orders objects. */
struct share_sort {
	struct pstree *tree;
	int type;		/* KCMP_FILES or KCMP_FS */
	int err;		/* first kcmp failure, -errno */
	pid_t err_a, err_b;
};

/*
 * qsort_r order of two tree indexes: kcmp()'s order of their objects (0 the same, 1 less,
 * 2 greater: it compares the kernel pointers, obfuscated with a per-boot cookie, so the order
 * is total and stable), then tree order, so that each group starts with its first process.
 */
static int cmp_by_object(const void *a, const void *b, void *arg)
{
	struct share_sort *s = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	pid_t pa = s->tree->procs[i].pid, pb = s->tree->procs[j].pid;
	int r = i == j ? 0 : sys_kcmp(pa, pb, s->type, 0, 0);

	if (r < 0 && !s->err) {
		s->err = -errno;
		s->err_a = pa;
		s->err_b = pb;
	}
	if (r == 1 || r == 2)
		return r == 1 ? -1 : 1;
	return i < j ? -1 : i > j;
}

/*
 * Sets *owner_of() of every live process sharing its object with an earlier one to the first
 * of them. Sorting by object takes O(n log n) kcmp calls instead of one per pair.
 */
static int find_owners(struct pstree *tree, int type, size_t *idx)
{
	struct share_sort s = { .tree = tree, .type = type };
	size_t n = 0;

	for (size_t i = 0; i < tree->nr; i++)
		if (!tree->procs[i].zombie)	/* a zombie has neither: exit dropped them */
			idx[n++] = i;
	qsort_r(idx, n, sizeof(*idx), cmp_by_object, &s);
	for (size_t k = 1; !s.err && k < n; k++) {
		struct pstree_proc *prev = &tree->procs[idx[k - 1]], *p = &tree->procs[idx[k]];
		int r = kcmp_differs(prev->pid, p->pid, type);

		if (r < 0)
			return r;
		if (!r)
			*owner_of(p, type) = *owner_of(prev, type) ? *owner_of(prev, type) : prev->pid;
	}
	if (s.err)
		return pr_errno(s.err, "pid %d, pid %d: kcmp failed", s.err_a, s.err_b);
	return 0;
}

int pstree_find_sharing(struct pstree *tree)
{
	static const int types[] = { KCMP_FILES, KCMP_FS };
	_cleanup_free_ size_t *idx = xmalloc(tree->nr * sizeof(*idx) + 1);
	int ret = idx ? 0 : -ENOMEM;

	for (size_t i = 0; !ret && i < tree->nr; i++)
		for (size_t k = 0; !ret && !tree->procs[i].zombie && k < ARRAY_SIZE(types); k++)
			ret = check_threads(&tree->procs[i], types[k]);
	for (size_t k = 0; !ret && k < ARRAY_SIZE(types); k++)
		ret = find_owners(tree, types[k], idx);
	for (size_t i = 0; !ret && i < tree->nr; i++)
		if (!tree->procs[i].zombie)
			ret = check_creatable(tree, i);
	return ret;
}
