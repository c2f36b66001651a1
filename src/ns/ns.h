/*
 * Namespaces: which ones a tree may have of its own, recording them at dump and making them
 * again at restore. For now a tree may own one pid (its root the init), one uts, one ipc and
 * one time namespace, shared by all of it; every other kind must be crest's.
 */
#ifndef CREST_NS_NS_H
#define CREST_NS_NS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ns.pb-c.h"

struct img_dir;
struct pstree;

/*
 * Dump, with the tree frozen: every thread must live in crest's net, mnt, user and cgroup
 * namespaces, and in the same pid, uts, ipc and time namespaces as the root; those of the
 * four that are not crest's are recorded in ns.img (hostname, clocks), and the objects of an
 * own ipc namespace in ipc-*.img (SysV shm, semaphores, message queues, POSIX mqueues). From
 * here on pidns_view translates the pids the dump writes. Returns 0, or -errno after one
 * error line naming the pid and the namespace (-EOPNOTSUPP for what crest cannot checkpoint
 * yet).
 */
int ns_dump(struct img_dir *dir, const struct pstree *tree);

/* Restore, in the controller: ns.img into *ret, or NULL for an image made before it existed. */
int ns_restore_read(struct img_dir *dir, NsEntry **ret);
/* The clone3 flags that create the root in its own namespaces: CLONE_NEWUTS, CLONE_NEWIPC. */
uint64_t ns_root_clone_flags(const NsEntry *ns);
/*
 * Controller, just before it forks the root: with a time namespace recorded, unshares one
 * for its children only (crest itself stays in its own) and sets its offsets so that the
 * tree's clocks go on from the values seen at dump. *ret_saved is crest's own time namespace
 * for ns_timens_done, or -1 when nothing was changed.
 */
int ns_timens_prepare(const NsEntry *ns, int *ret_saved);
/* After the root is forked: processes crest forks later are born in crest's time ns again. */
void ns_timens_done(int saved);
/*
 * In the new root, before it forks anything: the hostname and domain name of its uts ns, and
 * every object of its ipc ns, with its id.
 */
int ns_restore_root(struct img_dir *dir, const NsEntry *ns);
/*
 * In the root, once every process of the tree has premapped its memory (SysV segments are
 * attached again): what must wait for that (segments removed with IPC_RMID are removed again).
 */
int ns_restore_late(struct img_dir *dir, const NsEntry *ns);

/* Dump: pid lives in an ipc namespace other than crest's (so the tree's own, if its root's). */
bool ns_ipc_is_own(pid_t pid);

#endif
