/*
 * "mqueue": descriptors of POSIX message queues. A queue belongs to an ipc namespace, not to
 * a process: its attributes and messages are saved with the tree's own ipc namespace
 * (src/ns/ipc-mq.c, ipc-mq.img) and recreated there by the restored root before anything
 * else runs. A descriptor is then just the queue's name and its open flags, and is opened
 * again by name (mq_open) in the new namespace.
 *
 * A queue of a tree without an ipc namespace of its own is refused: it lives in crest's (the
 * host's) namespace, where other processes use it too, and a restore cannot give it back as
 * it was. An unlinked queue (mq_unlink while open) has no name to reopen and is refused too.
 */
#define LOG_PREFIX "files/mqueue: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "mqueue.pb-c.h"
#include "ns/ns.h"
#include "util/log.h"
#include "util/util.h"

#define MQUEUE_MAGIC 0x19800202	/* include/uapi/linux/magic.h */

static bool mqueue_match(const struct fd_dump_arg *a)
{
	struct statfs sf;

	return a->lfd >= 0 && !fstatfs(a->lfd, &sf) && sf.f_type == MQUEUE_MAGIC;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && !strcmp(s + ls - lx, suffix);
}

static int mqueue_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	MqueueFile *mf;

	if (!ns_ipc_is_own(a->pid)) {
		pr_err("pid %d fd %d: POSIX message queue %s: crest saves message queues only in a tree with an ipc namespace of its own (crest run, unshare --ipc)",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	if (a->link[0] != '/' || strchr(a->link + 1, '/') || ends_with(a->link, " (deleted)")) {
		pr_err("pid %d fd %d: POSIX message queue %s: removed with mq_unlink while open, so it cannot be opened again",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	mf = xmalloc(sizeof(*mf));
	if (!mf)
		return -ENOMEM;
	mqueue_file__init(mf);
	mf->flags = a->flags;
	mf->name = xstrdup(a->link);
	if (!mf->name) {
		free(mf);
		return -ENOMEM;
	}
	*ret = &mf->base;
	return 0;
}

/* The queue exists: the restored root made every queue of the namespace before forking. */
static int mqueue_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const MqueueFile *mf = (const MqueueFile *)rec;
	int fd = mq_open(mf->name, (mf->flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC);

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open POSIX message queue %s", a->pid, mf->name);
	return fd;
}

const struct fd_kind fd_kind_mqueue = {
	.name = "mqueue",
	.desc = &mqueue_file__descriptor,
	.match = mqueue_match,
	.dump = mqueue_dump,
	.open = mqueue_open,
};
