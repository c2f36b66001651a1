/*
 * The tree's pid namespace: pids as the tree sees them (in images) and as crest sees them
 * (ptrace, /proc, kill). All of it is the identity for a tree in crest's pid namespace.
 */
#ifndef CREST_NS_PIDNS_H
#define CREST_NS_PIDNS_H

#include <stdbool.h>
#include <sys/types.h>

struct pstree;

/*
 * Dump, tree frozen: finds whether the root is in a pid namespace of its own. Refuses (one line naming the pid, -EOPNOTSUPP) a root that is not pid 1 of a child
 * namespace of crest's, and a process of that namespace outside the tree. Nested namespaces
 * inside the tree are refused by ns_dump's walk over every thread.
 */
int pidns_dump_prepare(const struct pstree *tree);
/*
 * Dump: the pid the tree sees for crest's pid (or tid, or process group) host; host itself
 * for a tree in crest's namespace; 0 when the tree cannot see it (outside its namespace).
 */
pid_t pidns_view(pid_t host);
void pidns_dump_done(void);

/* Restore, in the controller before anything is created: own is ns.img's pid flag. */
void pidns_restore_begin(bool own);
/* In a process being restored: its pid as crest (the controller) sees it, or -errno. */
pid_t pidns_host_self(void);
/* Controller: learns the host tid of every thread of restored process host_pid. */
int pidns_restore_learn(pid_t host_pid);
/* Controller: crest's pid for the image's (tree's) pid view; 0 when not learned. */
pid_t pidns_host(pid_t view);
void pidns_restore_done(void);

#endif
