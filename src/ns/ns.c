/*
 * Namespaces. A tree may have a pid, a uts, an ipc and a time namespace of its own: one of
 * each, shared by all its threads, so the root's (a pid namespace only with the root as its
 * init: pidns.c). At restore the root is created in new ones (clone3 flags for pid, uts and
 * ipc, an unshared time namespace around its fork) and nobody else creates any. Every other kind must be crest's: a restore would silently put the tree back into
 * crest's, changing what it sees. Kinds this kernel lacks are not checked.
 */
#define LOG_PREFIX "ns: "
#include "ns/ns.h"
#include "ns/internal.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/pstree.h"
#include "image/img.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

/* One link of /proc/PID/task/TID/ns/ that every thread of the tree is checked on. */
struct ns_kind {
	const char *link;
	/*
	 * The link of crest (or, for kinds the tree may own, of the root) that it must name the
	 * same namespace as. A *_for_children link differs from its plain one after unshare(2),
	 * until the first child is forked into the new namespace: the tree is half-way into a
	 * namespace that a restore would not make.
	 */
	const char *like;
	int flag;		/* its CLONE_NEW* flag */
	bool may_own;		/* the tree may have one of its own, its root's */
};

static const struct ns_kind ns_kinds[] = {
	{ "pid",               "pid",    CLONE_NEWPID,    true },
	{ "pid_for_children",  "pid",    CLONE_NEWPID,    true },
	{ "net",               "net",    CLONE_NEWNET,    false },
	{ "mnt",               "mnt",    CLONE_NEWNS,     false },
	{ "user",              "user",   CLONE_NEWUSER,   false },
	{ "cgroup",            "cgroup", CLONE_NEWCGROUP, false },
	{ "uts",               "uts",    CLONE_NEWUTS,    true },
	{ "ipc",               "ipc",    CLONE_NEWIPC,    true },
	{ "time",              "time",   CLONE_NEWTIME,   true },
	{ "time_for_children", "time",   CLONE_NEWTIME,   true },
};

#define NR_KINDS ARRAY_SIZE(ns_kinds)

/* A namespace is known by the device and inode of its nsfs file. */
struct ns_id {
	dev_t dev;
	ino_t ino;
};

/* What the links of every thread must name, found once before the tree is walked. */
struct ns_refs {
	pid_t root;
	bool present[NR_KINDS];		/* this kernel has the kind (crest's link exists) */
	struct ns_id crest[NR_KINDS];	/* crest's namespace of the kind's `like` link */
	struct ns_id want[NR_KINDS];	/* crest's, or the root's for kinds the tree may own */
};

static bool same_ns(const struct ns_id *a, const struct ns_id *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

/* 0 with *ret set, or -errno; the caller decides what a missing link means. */
static int ns_stat(const char *path, struct ns_id *ret)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	*ret = (struct ns_id){ st.st_dev, st.st_ino };
	return 0;
}

static int find_refs(pid_t root, struct ns_refs *refs)
{
	char path[64];
	int err;

	refs->root = root;
	for (size_t k = 0; k < NR_KINDS; k++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns_kinds[k].like);
		refs->present[k] = !ns_stat(path, &refs->crest[k]);
		refs->want[k] = refs->crest[k];
		if (!refs->present[k] || !ns_kinds[k].may_own)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", root, ns_kinds[k].like);
		err = ns_stat(path, &refs->want[k]);
		if (err)
			return pr_errno(err, "pid %d: cannot inspect %s", root, path);
	}
	return 0;
}

/* One line saying why thread tid of pid cannot be checkpointed with kind k as it is. */
static int refuse(const struct ns_refs *refs, pid_t pid, pid_t tid, size_t k)
{
	const struct ns_kind *kind = &ns_kinds[k];
	char who[48];

	if (tid == pid)
		snprintf(who, sizeof(who), "pid %d", pid);
	else
		snprintf(who, sizeof(who), "pid %d thread %d", pid, tid);
	if (kind->flag == CLONE_NEWPID)
		pr_err("%s: %s a pid namespace nested in the tree's (pid %d): crest cannot checkpoint nested pid namespaces",
		       who, strcmp(kind->link, kind->like) ? "makes its children in" : "lives in", refs->root);
	else if (strcmp(kind->link, kind->like))
		pr_err("%s: its children are born in another %s namespace than its own, which crest cannot checkpoint yet",
		       who, kind->like);
	else if (!kind->may_own)
		pr_err("%s: lives in its own %s namespace, which crest cannot checkpoint yet",
		       who, kind->link);
	else
		pr_err("%s: lives in another %s namespace than its root (pid %d), which crest cannot checkpoint yet",
		       who, kind->link, refs->root);
	return -EOPNOTSUPP;
}

static int check_thread(const struct ns_refs *refs, pid_t pid, pid_t tid)
{
	char path[96];

	for (size_t k = 0; k < NR_KINDS; k++) {
		struct ns_id id = { 0, 0 };
		int err;

		if (!refs->present[k])
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/ns/%s", pid, tid, ns_kinds[k].link);
		err = ns_stat(path, &id);
		/* ENOENT: a pid namespace unshared but still without a process: no match. */
		if (err && err != -ENOENT)
			return pr_errno(err, "pid %d: cannot inspect %s", pid, path);
		if (!same_ns(&id, &refs->want[k]))
			return refuse(refs, pid, tid, k);
	}
	return 0;
}

/* Threads too: setns(2) and unshare(2) move only the calling thread. Zombies have none. */
static int check_tree(const struct pstree *tree, const struct ns_refs *refs)
{
	for (size_t i = 0; i < tree->nr; i++) {
		const struct pstree_proc *p = &tree->procs[i];

		for (size_t t = 0; !p->zombie && t < p->nr_threads; t++) {
			int err = check_thread(refs, p->pid, p->threads[t]);

			if (err)
				return err;
		}
	}
	return 0;
}

/* The tree owns a namespace of this kind when its root's is not crest's. */
static bool owns(const struct ns_refs *refs, int flag)
{
	for (size_t k = 0; k < NR_KINDS; k++)
		if (ns_kinds[k].flag == flag && ns_kinds[k].may_own)
			return refs->present[k] && !same_ns(&refs->want[k], &refs->crest[k]);
	return false;
}

/*
 * Fills e from inside the root's own namespaces (peek holds the strings e points to) and
 * writes the objects of an own ipc namespace to their images.
 */
static int record(struct img_dir *dir, const struct ns_refs *refs, NsEntry *e,
		  struct ns_peek *peek)
{
	int err;

	e->has_uts = e->uts = owns(refs, CLONE_NEWUTS);
	e->has_ipc = e->ipc = owns(refs, CLONE_NEWIPC);
	e->has_time = e->time = owns(refs, CLONE_NEWTIME);
	e->has_pid = e->pid = owns(refs, CLONE_NEWPID);
	if (e->uts) {
		err = ns_peek(refs->root, CLONE_NEWUTS, peek);
		if (err)
			return err;
	}
	if (e->ipc) {
		err = ns_ipc_dump(dir, refs->root);
		if (err)
			return err;
	}
	if (e->uts) {
		e->hostname = peek->uts.nodename;
		e->domainname = peek->uts.domainname;
	}
	return e->time ? ns_timens_dump(refs->root, e) : 0;
}

static int write_entry(struct img_dir *dir, const NsEntry *e)
{
	struct img *img = img_create(dir, IMG_MAGIC_NS, "ns.img");
	int err;

	if (!img)
		return -errno;
	err = img_write_msg(img, &e->base);
	return err ? (img_close(img), err) : img_close(img);
}

int ns_dump(struct img_dir *dir, const struct pstree *tree)
{
	struct ns_peek peek = { 0 };
	NsEntry e = NS_ENTRY__INIT;
	struct ns_refs refs;
	int err = find_refs(tree->procs[0].pid, &refs);

	if (!err)
		err = check_tree(tree, &refs);
	if (!err)
		err = pidns_dump_prepare(tree);
	if (!err)
		err = record(dir, &refs, &e, &peek);
	if (err)
		return err;
	if (e.uts || e.ipc || e.time || e.pid)
		pr_info("pid %d: the tree has namespaces of its own:%s%s%s%s", refs.root,
			e.pid ? " pid" : "", e.uts ? " uts" : "", e.ipc ? " ipc" : "", e.time ? " time" : "");
	/* Written even when empty: it says the tree had crest's namespaces. */
	return write_entry(dir, &e);
}

/* ---- restore ---------------------------------------------------------------------------- */

static bool inventory_lists(const Inventory *inv, const char *name)
{
	for (size_t i = 0; i < inv->n_files; i++)
		if (!strcmp(inv->files[i]->name, name))
			return true;
	return false;
}

/* What the restore relies on must be there, and fit the kernel's limits. */
static int check_entry(const NsEntry *e)
{
	if (e->uts && (!e->hostname || !e->domainname))
		return pr_errno(-EINVAL, "ns.img: an own uts namespace without its hostname or domain name");
	if (e->uts && (strlen(e->hostname) > 64 || strlen(e->domainname) > 64))
		return pr_errno(-EINVAL, "ns.img: hostname or domain name longer than 64 bytes");
	if (e->time && (!e->has_monotonic || !e->has_boottime))
		return pr_errno(-EINVAL, "ns.img: an own time namespace without its clock values");
	return 0;
}

int ns_restore_read(struct img_dir *dir, NsEntry **ret)
{
	NsEntry *e = NULL;
	struct img *img;
	int err;

	*ret = NULL;
	/* Images made before crest recorded namespaces lack it: their trees had crest's. */
	if (!inventory_lists(imgdir_inventory(dir), "ns.img"))
		return 0;
	img = img_open(dir, IMG_MAGIC_NS, "ns.img");
	if (!img)
		return -errno;	/* listed, so img_open said what is wrong */
	err = img_read(img, ns_entry, &e);
	img_close(img);
	if (!err && !e)
		err = pr_errno(-EINVAL, "ns.img: holds no record");
	if (!err)
		err = check_entry(e);
	if (err) {
		if (e)
			img_free(ns_entry, e);
		return err;
	}
	*ret = e;
	return 0;
}

uint64_t ns_root_clone_flags(const NsEntry *ns)
{
	if (!ns)
		return 0;
	return (ns->uts ? CLONE_NEWUTS : 0) | (ns->ipc ? CLONE_NEWIPC : 0) |
	       (ns->pid ? CLONE_NEWPID : 0);
}

static int restore_uts(const NsEntry *ns)
{
	if (sethostname(ns->hostname, strlen(ns->hostname)))
		return pr_errno(-errno, "pid %d: cannot set its hostname to '%s'", getpid(), ns->hostname);
	if (setdomainname(ns->domainname, strlen(ns->domainname)))
		return pr_errno(-errno, "pid %d: cannot set its domain name to '%s'", getpid(),
				ns->domainname);
	return 0;
}

int ns_restore_root(struct img_dir *dir, const NsEntry *ns)
{
	int err = 0;

	if (ns && ns->uts)
		err = restore_uts(ns);
	if (!err && ns && ns->ipc)
		err = ns_ipc_restore(dir);
	return err;
}

int ns_restore_late(struct img_dir *dir, const NsEntry *ns)
{
	return ns && ns->ipc ? ns_ipc_restore_late(dir) : 0;
}

bool ns_ipc_is_own(pid_t pid)
{
	struct stat mine, its;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", pid);
	if (stat("/proc/self/ns/ipc", &mine) || stat(path, &its))
		return false;
	return mine.st_ino != its.st_ino || mine.st_dev != its.st_dev;
}
