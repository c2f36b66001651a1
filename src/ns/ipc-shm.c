/*
 * "shm": SysV shared memory segments. Each is saved with its key, id, owner, mode, size and
 * the pages it has; a segment removed with IPC_RMID while still attached (SHM_DEST) is
 * recreated, attached again by every process that had it (src/mem/premap.c), and only then
 * removed again.
 *
 * Reading the contents attaches the segment read-only in crest for a moment, which the tree
 * can see: shm_atime, shm_dtime and shm_lpid change (shm_nattch comes back as it was).
 */
#define LOG_PREFIX "ns/ipc-shm: "
#include "ns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "image/img.h"
#include "mem/mem.h"
#include "util/log.h"
#include "util/util.h"

static void shm_image_id(char *buf, size_t len, uint32_t id)
{
	snprintf(buf, len, "ipcshm-%u", id);
}

/* The "start-end" of our own mapping at addr, from /proc/self/maps, into range. */
static int own_mapping_range(const void *addr, char *range, size_t len)
{
	char *maps = read_file_at(AT_FDCWD, "/proc/self/maps", NULL), *line;
	char want[24];
	int err = -ENOENT;

	if (!maps)
		return -errno;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	for (line = maps; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		if (!strncmp(line, want, strlen(want))) {
			snprintf(range, len, "%.*s", (int)strcspn(line, " "), line);
			err = 0;
			break;
		}
	}
	free(maps);
	return err;
}

/*
 * A segment made with SHM_HUGETLB lives on hugetlbfs, and nothing in IPC_STAT says so: crest
 * would make it again with small pages, so it is refused. Its file, reached through our own
 * attach in /proc/self/map_files, tells.
 */
static int shm_check_pages(pid_t root, int id, const void *addr)
{
	char range[64], path[96];
	struct statfs sf;
	int fd, err = own_mapping_range(addr, range, sizeof(range));

	if (err)
		return pr_errno(err, "SysV shm %d: cannot find its attach in /proc/self/maps", id);
	snprintf(path, sizeof(path), "/proc/self/map_files/%s", range);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstatfs(fd, &sf))
		err = pr_errno(-errno, "SysV shm %d: cannot inspect %s", id, path);
	else if (sf.f_type == HUGETLBFS_MAGIC)
		err = pr_errno(-EOPNOTSUPP, "pid %d: SysV shm %d of its ipc namespace is a segment of huge pages (SHM_HUGETLB), which crest cannot checkpoint yet",
			       root, id);
	if (fd >= 0)
		close(fd);
	return err;
}

static int shm_dump_contents(struct img_dir *dir, pid_t root, int id, uint64_t size)
{
	char name[32];
	void *addr;
	int err;

	addr = shmat(id, NULL, SHM_RDONLY);
	if (addr == (void *)-1)
		return pr_errno(-errno, "SysV shm %d: cannot attach it to read its contents", id);
	shm_image_id(name, sizeof(name), id);
	err = shm_check_pages(root, id, addr);
	if (!err)
		err = mem_sysv_dump(dir, name, addr, size);
	shmdt(addr);
	return err;
}

static int shm_dump_one(struct img *img, struct img_dir *dir, pid_t root, int id,
			const struct shmid_ds *ds)
{
	IpcShmEntry e = IPC_SHM_ENTRY__INIT;
	int err;

	e.perm = ipc_perm_new(&ds->shm_perm, id);
	if (!e.perm)
		return -ENOMEM;
	e.size = ds->shm_segsz;
	e.has_removed = e.removed = ds->shm_perm.mode & SHM_DEST;
	e.has_locked = e.locked = ds->shm_perm.mode & SHM_LOCKED;
	err = shm_dump_contents(dir, root, id, e.size);
	if (!err)
		err = img_write_msg(img, &e.base);
	ipc_perm_entry__free_unpacked(e.perm, NULL);
	return err;
}

/* SHM_INFO gives the highest index in use; SHM_STAT_ANY (4.17+) reads any index, no perms. */
static int shm_dump(struct img_dir *dir, pid_t root)
{
	struct shm_info info;
	struct img *img;
	int max, err = 0;

	max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
	if (max < 0)
		return pr_errno(-errno, "pid %d: cannot list the SysV shared memory of its ipc namespace",
				root);
	img = img_create(dir, IMG_MAGIC_IPC_SHM, "ipc-shm.img");
	if (!img)
		return -errno;
	for (int idx = 0; !err && idx <= max; idx++) {
		struct shmid_ds ds;
		int id = shmctl(idx, SHM_STAT_ANY, &ds);

		if (id < 0 && errno == EINVAL)
			continue;	/* a free index */
		if (id < 0)
			err = pr_errno(-errno, "pid %d: cannot read SysV shm index %d", root, idx);
		else
			err = shm_dump_one(img, dir, root, id, &ds);
	}
	return err ? (img_close(img), err) : img_close(img);
}

static int shm_set_owner(const IpcShmEntry *e)
{
	struct shmid_ds ds = { 0 };

	ds.shm_perm.uid = e->perm->uid;
	ds.shm_perm.gid = e->perm->gid;
	ds.shm_perm.mode = e->perm->mode;
	if (shmctl(e->perm->id, IPC_SET, &ds))
		return pr_errno(-errno, "SysV shm %u: cannot set owner %u:%u and mode %o",
				e->perm->id, e->perm->uid, e->perm->gid, e->perm->mode);
	if (e->locked && shmctl(e->perm->id, SHM_LOCK, NULL))
		return pr_errno(-errno, "SysV shm %u: cannot lock it (SHM_LOCK)", e->perm->id);
	return 0;
}

static int shm_fill(struct img_dir *dir, const IpcShmEntry *e)
{
	char name[32];
	void *addr;
	int err;

	addr = shmat(e->perm->id, NULL, 0);
	if (addr == (void *)-1)
		return pr_errno(-errno, "SysV shm %u: cannot attach it to fill it", e->perm->id);
	shm_image_id(name, sizeof(name), e->perm->id);
	err = mem_sysv_fill(dir, name, addr, e->size);
	shmdt(addr);
	return err;
}

static int shm_restore_one(struct img_dir *dir, const IpcShmEntry *e)
{
	int err = ipc_set_next_id("shm", e->perm->id), id;

	if (err)
		return err;
	id = shmget(e->perm->key, e->size, IPC_CREAT | IPC_EXCL | 0600);
	err = ipc_check_id("shm", e->perm, id);
	if (!err)
		err = shm_fill(dir, e);
	/* Owner last: crest (root) fills the segment first whatever mode it ends with. */
	return err ? err : shm_set_owner(e);
}

static int shm_read_all(struct img_dir *dir, IpcShmEntry ***ret, size_t *nr)
{
	struct img *img = img_open(dir, IMG_MAGIC_IPC_SHM, "ipc-shm.img");
	int err;

	*ret = NULL;
	*nr = 0;
	if (!img)
		return errno == ENOENT ? 0 : -errno;
	err = img_read_rest(img, ipc_shm_entry, ret, nr);
	img_close(img);
	return err;
}

static int shm_restore(struct img_dir *dir)
{
	IpcShmEntry **shms;
	size_t nr;
	int err = shm_read_all(dir, &shms, &nr);

	for (size_t i = 0; !err && i < nr; i++)
		err = shm_restore_one(dir, shms[i]);
	img_free_all((ProtobufCMessage **)shms, nr);
	return err;
}

/* Every process attached its segments again (premap): the removed ones are removed again. */
static int shm_restore_late(struct img_dir *dir)
{
	IpcShmEntry **shms;
	size_t nr;
	int err = shm_read_all(dir, &shms, &nr);

	for (size_t i = 0; !err && i < nr; i++) {
		if (shms[i]->removed && shmctl(shms[i]->perm->id, IPC_RMID, NULL))
			err = pr_errno(-errno, "SysV shm %u: cannot remove it again (IPC_RMID)",
				       shms[i]->perm->id);
	}
	img_free_all((ProtobufCMessage **)shms, nr);
	return err;
}

const struct ipc_kind ipc_kind_shm = {
	.name = "shm",
	.dump = shm_dump,
	.restore = shm_restore,
	.restore_late = shm_restore_late,
};
