/*
 * "mqueue": POSIX message queues. They look like regular files (open, fstat, even read give
 * the queue's status text), but their messages cannot be read without taking them, so a
 * dump refuses them by name instead of saving a file that a restore could not reopen.
 */
#define LOG_PREFIX "files/mqueue: "
#include "files/files.h"

#include <errno.h>
#include <sys/vfs.h>

#include "util/log.h"

#define MQUEUE_MAGIC 0x19800202	/* include/uapi/linux/magic.h */

static bool mqueue_match(const struct fd_dump_arg *a)
{
	struct statfs sf;

	return a->lfd >= 0 && !fstatfs(a->lfd, &sf) && sf.f_type == MQUEUE_MAGIC;
}

static int mqueue_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	pr_err("pid %d fd %d: POSIX message queue %s: cannot checkpoint it yet", a->pid, a->fd,
	       a->link);
	return -EOPNOTSUPP;
}

const struct fd_kind fd_kind_mqueue = {
	.name = "mqueue",
	.match = mqueue_match,
	.dump = mqueue_dump,
};
