/*
 * "mq": POSIX message queues of the namespace: name, owner, mode, mq_maxmsg, mq_msgsize and
 * every message with its priority. The queues are the files of the namespace's mqueue
 * filesystem, which a thread inside the namespace mounts for itself, detached (fsopen and
 * fsmount, 5.2+): "mqueue" mounts made there get that namespace's superblock, and no mount
 * namespace changes.
 *
 * The mq API has no way to read a message without taking it, and /dev/mqueue shows only the
 * count. While the tree is frozen, crest receives every message and sends it straight back
 * with its priority: receive order is priority first, then FIFO, so sending in that order
 * rebuilds the same queue. Nobody else can take or add a message meanwhile: the queue is in
 * the tree's own namespace and every process of the tree is stopped (a task stopped in
 * mq_receive/mq_send left the syscall and is not waiting on the queue). A queue with an
 * mq_notify registration is refused before anything is taken: putting the first message back
 * would fire and consume it, and its sigevent cannot be read back anyway. What the tree can see
 * of this: the queue file's access and modification times.
 */
#define LOG_PREFIX "ns/ipc-mq: "
#include "ns/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

/* The root of the caller's ipc namespace's mqueue fs, as a detached mount; -errno if none. */
static int mq_mount_ns(void)
{
	int fs = syscall(SYS_fsopen, "mqueue", FSOPEN_CLOEXEC), mnt = -1;

	if (fs < 0)
		return -errno;
	if (!syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0))
		mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
	if (mnt < 0)
		mnt = -errno;
	close(fs);
	return mnt;
}

/* The queue's status text (mqueue_read_file): "QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:n". */
static int mq_check_notify(int qfd, const char *name)
{
	char status[256] = "";
	const char *pid;

	if (pread(qfd, status, sizeof(status) - 1, 0) < 0)
		return pr_errno(-errno, "POSIX message queue /%s: cannot read its status", name);
	pid = strstr(status, "NOTIFY_PID:");
	if (pid && atoi(pid + 11) != 0) {
		pr_err("POSIX message queue /%s: pid %d is registered for notification (mq_notify), which crest cannot checkpoint",
		       name, atoi(pid + 11));
		return -EOPNOTSUPP;
	}
	return 0;
}

static void mq_free_msgs(IpcMqEntry *e)
{
	for (size_t i = 0; i < e->n_messages; i++) {
		free(e->messages[i]->data.data);
		free(e->messages[i]);
	}
	free(e->messages);
}

/* Takes every message, oldest of the highest priority first; a past timeout never blocks. */
static int mq_take_all(int qfd, const char *name, IpcMqEntry *e, long curmsgs)
{
	const struct timespec now = { 0, 0 };

	e->messages = xzalloc((curmsgs + 1) * sizeof(*e->messages));
	if (!e->messages)
		return -ENOMEM;
	for (long i = 0; i < curmsgs; i++) {
		IpcMqMsg *m = xmalloc(sizeof(*m));
		char *data = xmalloc(e->msgsize + 1);
		unsigned int prio;
		ssize_t len;

		if (!m || !data) {
			free(m);
			free(data);
			return -ENOMEM;
		}
		len = mq_timedreceive(qfd, data, e->msgsize, &prio, &now);
		if (len < 0) {
			free(m);
			free(data);
			return pr_errno(-errno, "POSIX message queue /%s: cannot read message %ld", name, i);
		}
		ipc_mq_msg__init(m);
		m->prio = prio;
		m->data.data = (uint8_t *)data;
		m->data.len = len;
		e->messages[e->n_messages++] = m;
	}
	return 0;
}

/* Puts back what mq_take_all took; a failure here has lost messages of the live tree. */
static int mq_put_back(int qfd, const char *name, const IpcMqEntry *e)
{
	const struct timespec now = { 0, 0 };

	for (size_t i = 0; i < e->n_messages; i++) {
		const IpcMqMsg *m = e->messages[i];

		if (mq_timedsend(qfd, (const char *)m->data.data, m->data.len, m->prio, &now))
			return pr_errno(-errno, "POSIX message queue /%s: cannot put message %zu back: the queue has lost %zu message(s)",
					name, i, e->n_messages - i);
	}
	return 0;
}

static int mq_dump_one(struct img *img, int mnt, const char *name)
{
	IpcMqEntry e = IPC_MQ_ENTRY__INIT;
	struct mq_attr attr;
	struct stat st;
	int qfd, err, err2;

	qfd = openat(mnt, name, O_RDWR | O_CLOEXEC);
	if (qfd < 0 || fstat(qfd, &st) || mq_getattr(qfd, &attr)) {
		err = pr_errno(-errno, "POSIX message queue /%s: cannot open it", name);
		goto out;
	}
	err = mq_check_notify(qfd, name);
	if (err)
		goto out;
	e.name = (char *)name;
	e.mode = st.st_mode & 07777;
	e.uid = st.st_uid;
	e.gid = st.st_gid;
	e.maxmsg = attr.mq_maxmsg;
	e.msgsize = attr.mq_msgsize;
	err = mq_take_all(qfd, name, &e, attr.mq_curmsgs);
	err2 = mq_put_back(qfd, name, &e);
	err = err ? err : err2;
	if (!err)
		err = img_write_msg(img, &e.base);
out:
	mq_free_msgs(&e);
	if (qfd >= 0)
		close(qfd);
	return err;
}

static int mq_dump_dir(struct img *img, int mnt)
{
	int dfd = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	struct dirent *de;
	DIR *d;

	d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		err = pr_errno(-errno, "cannot list the POSIX message queues of the tree's ipc namespace");
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	while (!err && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			err = mq_dump_one(img, mnt, de->d_name);
	}
	closedir(d);
	return err;
}

static int mq_dump(struct img_dir *dir, pid_t root)
{
	int mnt = mq_mount_ns(), err;
	struct img *img;

	/* A kernel without POSIX message queues (CONFIG_POSIX_MQUEUE) has none to save. */
	if (mnt == -ENODEV)
		return 0;
	if (mnt < 0)
		return pr_errno(mnt, "pid %d: cannot mount the mqueue filesystem of its ipc namespace",
				root);
	img = img_create(dir, IMG_MAGIC_IPC_MQ, "ipc-mq.img");
	if (!img) {
		close(mnt);
		return -errno;
	}
	err = mq_dump_dir(img, mnt);
	close(mnt);
	return err ? (img_close(img), err) : img_close(img);
}

static int mq_fill(int qfd, const IpcMqEntry *e)
{
	for (size_t i = 0; i < e->n_messages; i++) {
		const IpcMqMsg *m = e->messages[i];

		if (mq_send(qfd, (const char *)m->data.data, m->data.len, m->prio))
			return pr_errno(-errno, "POSIX message queue /%s: cannot put back message %zu (%zu bytes, priority %u)",
					e->name, i, m->data.len, m->prio);
	}
	if (fchmod(qfd, e->mode) || fchown(qfd, e->uid, e->gid))
		return pr_errno(-errno, "POSIX message queue /%s: cannot set owner %u:%u and mode %o",
				e->name, e->uid, e->gid, e->mode);
	return 0;
}

/* Raises /proc/sys/<name> to at least want (the sysctls have minimums: never lower them). */
static int mq_raise(const char *name, unsigned long long want)
{
	char path[96], value[32], *cur;
	unsigned long long have;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	cur = read_file_at(AT_FDCWD, path, NULL);
	if (!cur)
		return pr_errno(-errno, "cannot read %s", path);
	have = strtoull(cur, NULL, 10);
	free(cur);
	if (have >= want)
		return 0;
	snprintf(value, sizeof(value), "%llu", want);
	return ipc_write_sysctl(name, value);
}

/*
 * Without CAP_SYS_RESOURCE mq_open(2) refuses attributes above fs/mqueue/msg_max and
 * msgsize_max, and queues past queues_max: each limit is raised to what this queue needs (the
 * sysctl kind writes the namespace's own values back when every object exists).
 */
static int mq_raise_limits(const IpcMqEntry *e)
{
	int err = mq_raise("fs/mqueue/msg_max", e->maxmsg);

	if (!err)
		err = mq_raise("fs/mqueue/msgsize_max", e->msgsize);
	/* HARD_QUEUESMAX in ipc/mq_sysctl.c */
	return err ? err : mq_raise("fs/mqueue/queues_max", 1024);
}

static int mq_restore_one(const IpcMqEntry *e)
{
	struct mq_attr attr = { .mq_maxmsg = e->maxmsg, .mq_msgsize = e->msgsize };
	char name[NAME_MAX + 2];
	int err = mq_raise_limits(e), qfd;

	if (err)
		return err;
	if (strchr(e->name, '/') || strlen(e->name) > NAME_MAX)
		return pr_errno(-EINVAL, "ipc-mq.img: '%s' is not a message queue name", e->name);
	snprintf(name, sizeof(name), "/%s", e->name);
	qfd = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
	if (qfd < 0)
		return pr_errno(-errno, "POSIX message queue %s: cannot create it (%llu messages of %llu bytes)",
				name, (unsigned long long)e->maxmsg, (unsigned long long)e->msgsize);
	err = mq_fill(qfd, e);
	close(qfd);
	return err;
}

static int mq_restore(struct img_dir *dir)
{
	struct img *img = img_open(dir, IMG_MAGIC_IPC_MQ, "ipc-mq.img");
	IpcMqEntry **queues = NULL;
	size_t nr = 0;
	int err;

	if (!img)
		return errno == ENOENT ? 0 : -errno;
	err = img_read_rest(img, ipc_mq_entry, &queues, &nr);
	img_close(img);
	for (size_t i = 0; !err && i < nr; i++)
		err = mq_restore_one(queues[i]);
	img_free_all((ProtobufCMessage **)queues, nr);
	return err;
}

const struct ipc_kind ipc_kind_mq = {
	.name = "mq",
	.dump = mq_dump,
	.restore = mq_restore,
};
