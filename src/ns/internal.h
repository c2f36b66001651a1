/* Shared by the files of src/ns/ only: nothing outside calls these. */
#ifndef CREST_NS_INTERNAL_H
#define CREST_NS_INTERNAL_H

#include <sys/types.h>
#include <sys/utsname.h>

#include "ns.pb-c.h"

/* SysV object lists of an ipc namespace, in the order of ns_peek.nr_sysv. */
enum { NS_SYSV_SHM, NS_SYSV_SEM, NS_SYSV_MSG, NS_SYSV_KINDS };

/* What a child of crest read from inside a process's uts and ipc namespaces. */
struct ns_peek {
	int err;			/* 0, or -errno of the step named in what */
	char what[64];			/* the step that failed */
	struct utsname uts;		/* with CLONE_NEWUTS */
	unsigned int nr_sysv[NS_SYSV_KINDS];	/* with CLONE_NEWIPC: objects of each kind */
};

/*
 * Reads what flags (CLONE_NEWUTS, CLONE_NEWIPC) ask for from inside pid's namespaces, in a
 * short-lived child that joins them with setns(2) on a pidfd: uname(2) and /proc/sysvipc
 * answer only for the caller's own namespace. 0 or -errno, logged naming pid.
 */
int ns_peek(pid_t pid, int flags, struct ns_peek *ret);

/* Dump: the offsets of pid's time namespace and the clocks seen inside it, into e. */
int ns_timens_dump(pid_t pid, NsEntry *e);

#endif
