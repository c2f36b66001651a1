/*
 * The objects of a tree's own ipc namespace. The kernel shows them only to tasks inside the
 * namespace (the *_STAT_ANY calls, /proc/sysvipc, /proc/sys/kernel and the mqueue filesystem
 * all answer for the caller's), so the dump runs each kind in a short-lived thread of crest
 * that joins the tree's namespace with setns(2): an ipc namespace belongs to one task (thread),
 * so crest's other threads, and crest after the thread ends, stay where they were. The restore
 * runs in the restored root, born with CLONE_NEWIPC, before it forks anything.
 */
#define LOG_PREFIX "ns/ipc: "
#include "ns/ns.h"
#include "ns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

/*
 * In restore order: the sysctls first (the limits the objects must fit in), then the objects.
 * The sysctl kind writes its values once more at the end, because creating queues may have
 * raised some of them on the way (kernel.msgmnb, fs/mqueue limits).
 */
static const struct ipc_kind *const ipc_kinds[] = {
	&ipc_kind_var,
	&ipc_kind_shm,
	&ipc_kind_sem,
	&ipc_kind_msg,
	&ipc_kind_mq,
};

struct ipc_dump_job {
	struct img_dir *dir;
	pid_t root;
	int pidfd;
	int err;
};

static void *ipc_dump_thread(void *arg)
{
	struct ipc_dump_job *job = arg;

	if (setns(job->pidfd, CLONE_NEWIPC)) {
		job->err = pr_errno(-errno, "pid %d: cannot join its ipc namespace", job->root);
		return NULL;
	}
	for (size_t i = 0; !job->err && i < ARRAY_SIZE(ipc_kinds); i++)
		job->err = ipc_kinds[i]->dump(job->dir, job->root);
	return NULL;
}

int ns_ipc_dump(struct img_dir *dir, pid_t root)
{
	struct ipc_dump_job job = { .dir = dir, .root = root };
	pthread_t thread;
	int err;

	job.pidfd = sys_pidfd_open(root, 0);
	if (job.pidfd < 0)
		return pr_errno(-errno, "pid %d: cannot open a pidfd", root);
	err = pthread_create(&thread, NULL, ipc_dump_thread, &job);
	if (err)
		job.err = pr_errno(-err, "pid %d: cannot start a thread to read its ipc namespace", root);
	else
		pthread_join(thread, NULL);
	close(job.pidfd);
	return job.err;
}

int ns_ipc_restore(struct img_dir *dir)
{
	int err = 0;

	for (size_t i = 0; !err && i < ARRAY_SIZE(ipc_kinds); i++)
		err = ipc_kinds[i]->restore(dir);
	return err ? err : ipc_kind_var.restore(dir);
}

int ns_ipc_restore_late(struct img_dir *dir)
{
	int err = 0;

	for (size_t i = 0; !err && i < ARRAY_SIZE(ipc_kinds); i++)
		if (ipc_kinds[i]->restore_late)
			err = ipc_kinds[i]->restore_late(dir);
	return err;
}

IpcPermEntry *ipc_perm_new(const struct ipc_perm *perm, int id)
{
	IpcPermEntry *e = xmalloc(sizeof(*e));

	if (!e)
		return NULL;
	ipc_perm_entry__init(e);
	e->key = perm->__key;
	e->id = id;
	e->mode = perm->mode & 0777;
	e->uid = perm->uid;
	e->gid = perm->gid;
	return e;
}

int ipc_write_sysctl(const char *name, const char *value)
{
	char path[128];
	int fd, err = 0;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, value, strlen(value)))
		err = pr_errno(-errno, "cannot set %s to %s", path, value);
	if (fd >= 0)
		close(fd);
	return err;
}

/* kernel.*_next_id (3.19+, per ipc namespace): the id the next object of the kind gets. */
int ipc_set_next_id(const char *kind, int id)
{
	char name[64], value[16];

	snprintf(name, sizeof(name), "kernel/%s_next_id", kind);
	snprintf(value, sizeof(value), "%d", id);
	return ipc_write_sysctl(name, value);
}

int ipc_check_id(const char *kind, const IpcPermEntry *perm, int got)
{
	if (got < 0)
		return pr_errno(-errno, "SysV %s %u (key %#x): cannot create it", kind, perm->id,
				perm->key);
	if ((uint32_t)got == perm->id)
		return 0;
	pr_err("SysV %s %u (key %#x): created with id %d instead", kind, perm->id, perm->key, got);
	return -EEXIST;
}
