/*
 * "msg": SysV message queues: key, id, owner, mode, capacity (msg_qbytes) and every message
 * with its type, in queue order. msgrcv(MSG_COPY) (3.8+, CONFIG_CHECKPOINT_RESTORE) copies the
 * n-th message without taking it, and changes nothing else (no msg_lrpid, no msg_rtime).
 * Not saved: msg_lspid, msg_lrpid and the times (no call sets them).
 */
#define LOG_PREFIX "ns/ipc-msg: "
#include "ns/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

/* What msgrcv/msgsnd take: the type, then the text. */
struct msg_buf {
	long mtype;
	char mtext[];
};

static void msg_free_all(IpcMsgEntry *e)
{
	for (size_t i = 0; i < e->n_messages; i++) {
		free(e->messages[i]->data.data);
		free(e->messages[i]);
	}
	free(e->messages);
}

static int msg_copy_one(int id, size_t n, struct msg_buf *buf, size_t max, IpcMsg **ret)
{
	ssize_t len = msgrcv(id, buf, max, n, IPC_NOWAIT | MSG_COPY);
	IpcMsg *m;

	if (len < 0 && errno == ENOSYS)
		return pr_errno(-EOPNOTSUPP, "SysV message queue %d: this kernel cannot read a message without taking it (MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)",
				id);
	if (len < 0)
		return pr_errno(-errno, "SysV message queue %d: cannot copy message %zu", id, n);
	m = xmalloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	ipc_msg__init(m);
	m->mtype = buf->mtype;
	m->data.len = len;
	m->data.data = xmalloc(len + 1);
	if (!m->data.data) {
		free(m);
		return -ENOMEM;
	}
	memcpy(m->data.data, buf->mtext, len);
	*ret = m;
	return 0;
}

static int msg_dump_one(struct img *img, int id, const struct msqid_ds *ds)
{
	IpcMsgEntry e = IPC_MSG_ENTRY__INIT;
	size_t max = ds->__msg_cbytes + 1;
	struct msg_buf *buf = xmalloc(sizeof(*buf) + max);
	int err = 0;

	e.perm = ipc_perm_new(&ds->msg_perm, id);
	e.messages = xzalloc((ds->msg_qnum + 1) * sizeof(*e.messages));
	if (!buf || !e.perm || !e.messages) {
		err = -ENOMEM;
		goto out;
	}
	e.qbytes = ds->msg_qbytes;
	for (size_t n = 0; !err && n < ds->msg_qnum; n++) {
		err = msg_copy_one(id, n, buf, max, &e.messages[n]);
		if (!err)
			e.n_messages++;
	}
	if (!err)
		err = img_write_msg(img, &e.base);
out:
	msg_free_all(&e);
	free(buf);
	if (e.perm)
		ipc_perm_entry__free_unpacked(e.perm, NULL);
	return err;
}

static int msg_dump(struct img_dir *dir, pid_t root)
{
	struct msginfo info;
	struct img *img;
	int max, err = 0;

	max = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
	if (max < 0)
		return pr_errno(-errno, "pid %d: cannot list the SysV message queues of its ipc namespace",
				root);
	img = img_create(dir, IMG_MAGIC_IPC_MSG, "ipc-msg.img");
	if (!img)
		return -errno;
	for (int idx = 0; !err && idx <= max; idx++) {
		struct msqid_ds ds;
		int id = msgctl(idx, MSG_STAT_ANY, &ds);

		if (id < 0 && errno == EINVAL)
			continue;	/* a free index */
		if (id < 0)
			err = pr_errno(-errno, "pid %d: cannot read SysV message queue index %d", root, idx);
		else
			err = msg_dump_one(img, id, &ds);
	}
	return err ? (img_close(img), err) : img_close(img);
}

static int msg_send_all(const IpcMsgEntry *e)
{
	for (size_t i = 0; i < e->n_messages; i++) {
		const IpcMsg *m = e->messages[i];
		struct msg_buf *buf = xmalloc(sizeof(*buf) + m->data.len + 1);
		int err = 0;

		if (!buf)
			return -ENOMEM;
		buf->mtype = m->mtype;
		memcpy(buf->mtext, m->data.data, m->data.len);
		if (msgsnd(e->perm->id, buf, m->data.len, IPC_NOWAIT))
			err = pr_errno(-errno, "SysV message queue %u: cannot put back message %zu (type %ld, %zu bytes)",
				       e->perm->id, i, (long)m->mtype, m->data.len);
		free(buf);
		if (err)
			return err;
	}
	return 0;
}

/*
 * A new queue gets kernel.msgmnb as its capacity, and IPC_SET may raise it past msgmnb only
 * with CAP_SYS_RESOURCE: msgmnb is set to what this queue needs first (the sysctl kind puts
 * the namespace's own value back at the end).
 */
static int msg_make_queue(const IpcMsgEntry *e, uint64_t bytes)
{
	char value[32];
	int err, id;

	snprintf(value, sizeof(value), "%llu",
		 (unsigned long long)MAX(MAX(e->qbytes, bytes), (uint64_t)1));
	err = ipc_write_sysctl("kernel/msgmnb", value);
	if (!err)
		err = ipc_set_next_id("msg", e->perm->id);
	if (err)
		return err;
	id = msgget(e->perm->key, IPC_CREAT | IPC_EXCL | 0600);
	return ipc_check_id("message queue", e->perm, id);
}

static int msg_restore_one(const IpcMsgEntry *e)
{
	struct msqid_ds ds = { 0 };
	uint64_t bytes = 0;
	int err;

	for (size_t i = 0; i < e->n_messages; i++)
		bytes += e->messages[i]->data.len;
	err = msg_make_queue(e, bytes);
	if (!err)
		err = msg_send_all(e);
	if (err)
		return err;
	ds.msg_perm.uid = e->perm->uid;
	ds.msg_perm.gid = e->perm->gid;
	ds.msg_perm.mode = e->perm->mode;
	ds.msg_qbytes = e->qbytes;
	if (msgctl(e->perm->id, IPC_SET, &ds))
		return pr_errno(-errno, "SysV message queue %u: cannot set owner %u:%u, mode %o and capacity %llu",
				e->perm->id, e->perm->uid, e->perm->gid, e->perm->mode,
				(unsigned long long)e->qbytes);
	return 0;
}

static int msg_restore(struct img_dir *dir)
{
	struct img *img = img_open(dir, IMG_MAGIC_IPC_MSG, "ipc-msg.img");
	IpcMsgEntry **queues = NULL;
	size_t nr = 0;
	int err;

	if (!img)
		return errno == ENOENT ? 0 : -errno;
	err = img_read_rest(img, ipc_msg_entry, &queues, &nr);
	img_close(img);
	for (size_t i = 0; !err && i < nr; i++)
		err = msg_restore_one(queues[i]);
	img_free_all((ProtobufCMessage **)queues, nr);
	return err;
}

const struct ipc_kind ipc_kind_msg = {
	.name = "msg",
	.dump = msg_dump,
	.restore = msg_restore,
};
