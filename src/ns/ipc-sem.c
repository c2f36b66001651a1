/*
 * "sem": SysV semaphore sets: key, id, owner, mode and the value of every semaphore.
 *
 * Not saved: sempid and the times (no call sets them), and the undo lists (semadj) that
 * semop(SEM_UNDO) leaves in the processes: the kernel shows them nowhere, so an undo a
 * process would have done at exit is lost. docs/design-notes.md says so.
 */
#define LOG_PREFIX "ns/ipc-sem: "
#include "ns/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/sem.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

/* semctl(2): the caller defines union semun. */
union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static int sem_dump_one(struct img *img, int id, const struct semid_ds *ds)
{
	IpcSemEntry e = IPC_SEM_ENTRY__INIT;
	unsigned short *vals = xmalloc((ds->sem_nsems + 1) * sizeof(*vals));
	int err = 0;

	e.perm = ipc_perm_new(&ds->sem_perm, id);
	e.values = xmalloc((ds->sem_nsems + 1) * sizeof(*e.values));
	if (!vals || !e.perm || !e.values) {
		err = -ENOMEM;
		goto out;
	}
	if (semctl(id, 0, GETALL, (union semun){ .array = vals }) < 0) {
		err = pr_errno(-errno, "SysV semaphore set %d: cannot read its values", id);
		goto out;
	}
	e.n_values = ds->sem_nsems;
	for (size_t i = 0; i < e.n_values; i++)
		e.values[i] = vals[i];
	err = img_write_msg(img, &e.base);
out:
	free(vals);
	free(e.values);
	if (e.perm)
		ipc_perm_entry__free_unpacked(e.perm, NULL);
	return err;
}

static int sem_dump(struct img_dir *dir, pid_t root)
{
	struct seminfo info;
	struct img *img;
	int max, err = 0;

	max = semctl(0, 0, SEM_INFO, (union semun){ .buf = (struct semid_ds *)&info });
	if (max < 0)
		return pr_errno(-errno, "pid %d: cannot list the SysV semaphores of its ipc namespace",
				root);
	img = img_create(dir, IMG_MAGIC_IPC_SEM, "ipc-sem.img");
	if (!img)
		return -errno;
	for (int idx = 0; !err && idx <= max; idx++) {
		struct semid_ds ds;
		int id = semctl(idx, 0, SEM_STAT_ANY, (union semun){ .buf = &ds });

		if (id < 0 && errno == EINVAL)
			continue;	/* a free index */
		if (id < 0)
			err = pr_errno(-errno, "pid %d: cannot read SysV semaphore index %d", root, idx);
		else
			err = sem_dump_one(img, id, &ds);
	}
	return err ? (img_close(img), err) : img_close(img);
}

static int sem_set_values(const IpcSemEntry *e)
{
	unsigned short *vals = xmalloc((e->n_values + 1) * sizeof(*vals));
	int err = 0;

	if (!vals)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_values; i++)
		vals[i] = e->values[i];
	if (semctl(e->perm->id, 0, SETALL, (union semun){ .array = vals }) < 0)
		err = pr_errno(-errno, "SysV semaphore set %u: cannot set its values", e->perm->id);
	free(vals);
	return err;
}

static int sem_restore_one(const IpcSemEntry *e)
{
	struct semid_ds ds = { 0 };
	int err, id;

	if (!e->n_values)
		return pr_errno(-EINVAL, "ipc-sem.img: semaphore set %u without semaphores", e->perm->id);
	err = ipc_set_next_id("sem", e->perm->id);
	if (err)
		return err;
	id = semget(e->perm->key, e->n_values, IPC_CREAT | IPC_EXCL | 0600);
	err = ipc_check_id("semaphore set", e->perm, id);
	if (!err)
		err = sem_set_values(e);
	if (err)
		return err;
	ds.sem_perm.uid = e->perm->uid;
	ds.sem_perm.gid = e->perm->gid;
	ds.sem_perm.mode = e->perm->mode;
	if (semctl(id, 0, IPC_SET, (union semun){ .buf = &ds }) < 0)
		return pr_errno(-errno, "SysV semaphore set %d: cannot set owner %u:%u and mode %o", id,
				e->perm->uid, e->perm->gid, e->perm->mode);
	return 0;
}

static int sem_restore(struct img_dir *dir)
{
	struct img *img = img_open(dir, IMG_MAGIC_IPC_SEM, "ipc-sem.img");
	IpcSemEntry **sems = NULL;
	size_t nr = 0;
	int err;

	if (!img)
		return errno == ENOENT ? 0 : -errno;
	err = img_read_rest(img, ipc_sem_entry, &sems, &nr);
	img_close(img);
	for (size_t i = 0; !err && i < nr; i++)
		err = sem_restore_one(sems[i]);
	img_free_all((ProtobufCMessage **)sems, nr);
	return err;
}

const struct ipc_kind ipc_kind_sem = {
	.name = "sem",
	.dump = sem_dump,
	.restore = sem_restore,
};
