/* Shared by the files of src/ns/ only: nothing outside calls these. */
#ifndef CREST_NS_INTERNAL_H
#define CREST_NS_INTERNAL_H

#include <sys/ipc.h>
#include <sys/types.h>
#include <sys/utsname.h>

#include "ipc.pb-c.h"
#include "ns.pb-c.h"

struct img_dir;

/* What a child of crest read from inside a process's uts namespace. */
struct ns_peek {
	int err;			/* 0, or -errno of the step named in what */
	char what[64];			/* the step that failed */
	struct utsname uts;		/* with CLONE_NEWUTS */
};

/*
 * Reads what flags (CLONE_NEWUTS) ask for from inside pid's namespaces, in a short-lived
 * child that joins them with setns(2) on a pidfd: uname(2) answers only for the caller's own
 * namespace. 0 or -errno, logged naming pid.
 */
int ns_peek(pid_t pid, int flags, struct ns_peek *ret);

/*
 * One kind of object that lives in an ipc namespace (ipc-*.c): SysV shared memory, semaphore
 * sets and message queues, POSIX message queues, and the namespace's sysctls.
 */
struct ipc_kind {
	const char *name;	/* for messages: "shm", "sem", "msg", "mq", "sysctl" */
	/*
	 * Dump, in a thread of crest that has joined the ipc namespace of the tree whose root is
	 * root (nothing else of crest moved): writes the kind's image. 0, or -errno after logging.
	 */
	int (*dump)(struct img_dir *dir, pid_t root);
	/*
	 * Restore, in the restored root, inside its new ipc namespace and before it forks
	 * anything: recreates every object of the image, with its id. 0, or -errno after logging.
	 */
	int (*restore)(struct img_dir *dir);
	/* Restore, optional: in the root once every process has mapped its memory. */
	int (*restore_late)(struct img_dir *dir);
};

extern const struct ipc_kind ipc_kind_var, ipc_kind_shm, ipc_kind_sem, ipc_kind_msg, ipc_kind_mq;

/* Dump: every object of root's ipc namespace into ipc-*.img (ipc.c). */
int ns_ipc_dump(struct img_dir *dir, pid_t root);
/* Restore, in the new root before it forks: every object of the image, with its id. */
int ns_ipc_restore(struct img_dir *dir);
/* Restore, in the root once every process premapped its memory (SysV shm attached). */
int ns_ipc_restore_late(struct img_dir *dir);

/* Helpers of the ipc kinds (ipc.c). */
/* The owner, mode, key and id of a SysV object, from its IPC_STAT/_STAT_ANY answer. */
IpcPermEntry *ipc_perm_new(const struct ipc_perm *perm, int id);
/* Makes the next SysV object of kind ("shm", "sem", "msg") get id: kernel.<kind>_next_id. */
int ipc_set_next_id(const char *kind, int id);
/* Writes value to /proc/sys/<name> (in the caller's ipc namespace). */
int ipc_write_sysctl(const char *name, const char *value);
/* Checks that the object created for perm got the id it asked for. */
int ipc_check_id(const char *kind, const IpcPermEntry *perm, int got);

/* Dump: the offsets of pid's time namespace and the clocks seen inside it, into e. */
int ns_timens_dump(pid_t pid, NsEntry *e);

#endif
