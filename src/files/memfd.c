/*
 * "memfd": an open file description of a memfd (memfd_create(2); link "/memfd:NAME (deleted)",
 * a regular file on the kernel's internal shmem mount). Its name, size, seals, mode, owner and
 * contents are saved once per inode; restore creates one new memfd per inode in one process
 * (group by inode) and opens every description through it (/proc/self/fd), so descriptions
 * that shared a memfd still do.
 *
 * A memfd that is also mapped in the tree is one shared memory object for the memory code
 * too (mem/shmem.c), which saved its contents before the files are dumped: the record says
 * "mapped" and saves them no second time. At restore this kind creates the memfd, the memory
 * code fills it and maps it (files_restore_shmem_entry()), and the seals come last, in
 * restore_late, once every process has mapped it: F_SEAL_FUTURE_WRITE forbids new writable
 * mappings, and contents cannot be written after F_SEAL_WRITE. A memfd mapped by a process
 * outside the tree is refused: that mapping would not share the restored memfd.
 */
#define LOG_PREFIX "files/memfd: "
#include "files/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "files/flock.h"
#include "files/fown.h"
#include "files/reopen.h"
#include "image/img.h"
#include "infect/infect.h"
#include "mem/mem.h"
#include "memfd.pb-c.h"
#include "util/log.h"
#include "util/util.h"

#define MEMFD_IMG "pages-memfd-%" PRIu64 ".img"
#define COPY_CHUNK (1024 * 1024)

static bool memfd_match(const struct fd_dump_arg *a)
{
	return S_ISREG(a->st->st_mode) && link_is_memfd(a->link);
}

/* Dump-side state: memfds whose contents are saved, with their extents for later records. */
static struct {
	struct saved_memfd {
		uint64_t ino;
		bool mapped;		/* contents saved as a shared memory object */
		MemfdExtent *ext;	/* array of n plain structs, copied into each record */
		size_t n, cap;
	} *v;
	size_t nr, cap;
} saved;

static struct saved_memfd *find_saved(uint64_t ino)
{
	for (size_t i = 0; i < saved.nr; i++)
		if (saved.v[i].ino == ino)
			return &saved.v[i];
	return NULL;
}

/* A process of the tree being dumped: crest has seized it (TracerPid), or crest itself. */
static bool in_tree(pid_t pid)
{
	return pid == getpid() || infect_traced_by_us(pid);
}

/*
 * Refuses a memfd mapped by a process outside the tree (found by its device and inode in
 * /proc/PID/maps: "start-end perms offset maj:min inode path"): after restore that mapping
 * would no longer share the memfd. Mappings inside the tree are restored as the same object.
 */
static int check_not_mapped_outside(const struct fd_dump_arg *a)
{
	char needle[64];
	struct dirent *de;
	DIR *d = opendir("/proc");
	int ret = 0;

	if (!d)
		return pr_errno(-errno, "cannot list /proc");
	snprintf(needle, sizeof(needle), " %02x:%02x %" PRIu64 " ", major(a->st->st_dev),
		 minor(a->st->st_dev), (uint64_t)a->st->st_ino);
	while (!ret && (de = readdir(d))) {
		char path[sizeof(de->d_name) + 16], *maps;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", de->d_name);
		maps = read_file_at(AT_FDCWD, path, NULL);
		if (maps && strstr(maps, needle) && !in_tree(atoi(de->d_name))) {
			pr_err("pid %d fd %d: %s is also mapped by pid %s, outside the tree: that mapping would no longer share it after restore",
			       a->pid, a->fd, a->link, de->d_name);
			ret = -EOPNOTSUPP;
		}
		free(maps);
	}
	closedir(d);
	return ret;
}

static int check_memfd(const struct fd_dump_arg *a)
{
	char path[64];
	struct statfs sf;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	if (statfs(path, &sf))
		return pr_errno(-errno, "pid %d fd %d: cannot statfs %s", a->pid, a->fd, path);
	if ((unsigned long)sf.f_type == HUGETLBFS_MAGIC) {
		pr_err("pid %d fd %d: %s: memfds of huge pages (MFD_HUGETLB) are not supported",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	return check_not_mapped_outside(a);
}

static int copy_range(const struct fd_dump_arg *a, int fd, struct img *img, off_t off, off_t end)
{
	_cleanup_free_ char *buf = xmalloc(COPY_CHUNK);
	int ret = buf ? 0 : -ENOMEM;

	while (!ret && off < end) {
		size_t len = MIN((size_t)(end - off), (size_t)COPY_CHUNK);

		ret = pread_all(fd, buf, len, off);
		if (ret)
			pr_errno(ret, "pid %d fd %d: %s: cannot read it at %lld", a->pid, a->fd,
				 a->link, (long long)off);
		else
			ret = img_write_raw(img, buf, len);
		off += len;
	}
	return ret;
}

/*
 * Walks the data ranges (SEEK_DATA/SEEK_HOLE: pages never written are holes) of a private
 * description, so that no offset of the target's moves, and copies them to the image.
 */
static int copy_extents(const struct fd_dump_arg *a, int fd, struct img *img,
			struct saved_memfd *sm)
{
	off_t size = a->st->st_size, data = 0, hole;
	int ret = 0;

	while (!ret && data < size) {
		data = lseek(fd, data, SEEK_DATA);
		if (data < 0)
			break;	/* ENXIO: no data past here */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		if (xgrow((void **)&sm->ext, &sm->cap, sm->n + 1, sizeof(*sm->ext)))
			return -ENOMEM;
		memfd_extent__init(&sm->ext[sm->n]);
		sm->ext[sm->n].off = data;
		sm->ext[sm->n++].len = hole - data;
		ret = copy_range(a, fd, img, data, hole);
		data = hole;
	}
	return ret;
}

static int save_contents(const struct fd_dump_arg *a, struct saved_memfd **ret_sm)
{
	char path[64];
	struct saved_memfd *sm;
	struct img *img;
	int fd, ret;

	if (xgrow((void **)&saved.v, &saved.cap, saved.nr + 1, sizeof(*saved.v)))
		return -ENOMEM;
	sm = &saved.v[saved.nr++];
	memset(sm, 0, sizeof(*sm));
	sm->ino = a->st->st_ino;
	*ret_sm = sm;
	sm->mapped = mem_shmem_dumped(a->dir, sm->ino);
	if (sm->mapped)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot open it to copy its contents", a->pid, a->fd, a->link);
	img = img_create(a->dir, IMG_MAGIC_RAW, MEMFD_IMG, (uint64_t)a->st->st_ino);
	ret = img ? copy_extents(a, fd, img, sm) : -errno;
	if (img)
		ret = ret ? (img_close(img), ret) : img_close(img);
	close(fd);
	return ret;
}

static int copy_extent_list(MemfdFile *mf, const struct saved_memfd *sm)
{
	mf->extents = xzalloc(sm->n * sizeof(*mf->extents) + 1);
	if (!mf->extents)
		return -ENOMEM;
	for (size_t i = 0; i < sm->n; i++) {
		mf->extents[i] = xmalloc(sizeof(**mf->extents));
		if (!mf->extents[i])
			return -ENOMEM;
		*mf->extents[i] = sm->ext[i];
		mf->n_extents++;
	}
	return 0;
}

/* "/memfd:NAME (deleted)" -> NAME */
static char *memfd_name(const char *link)
{
	char *name = xstrdup(link + strlen("/memfd:"));

	if (name)
		name[strlen(name) - strlen(DELETED_SUFFIX)] = '\0';
	return name;
}

/* F_GET_SEALS through our copy, or a reader of our own where fcntl refuses it (O_PATH). */
static int read_seals(const struct fd_dump_arg *a)
{
	char path[64];
	int fd, seals;

	if (!(a->flags & O_PATH))
		return fcntl(a->lfd, F_GET_SEALS);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	seals = fcntl(fd, F_GET_SEALS);
	close(fd);
	return seals;
}

static int fill_record(const struct fd_dump_arg *a, MemfdFile *mf, const struct saved_memfd *sm)
{
	int seals = read_seals(a);

	if (seals < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot read its seals", a->pid, a->fd, a->link);
	mf->name = memfd_name(a->link);
	mf->flags = a->flags;
	mf->pos = a->pos;
	mf->ino = a->st->st_ino;
	mf->size = a->st->st_size;
	mf->seals = seals;
	mf->mode = a->st->st_mode;
	mf->uid = a->st->st_uid;
	mf->gid = a->st->st_gid;
	mf->has_mapped = sm->mapped;
	mf->mapped = sm->mapped;
	if (!mf->name)
		return -ENOMEM;
	return copy_extent_list(mf, sm);
}

static int memfd_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct saved_memfd *sm = find_saved(a->st->st_ino);
	MemfdFile *mf;
	int err = a->lfd < 0 ? -EBADF : 0;

	if (err)
		return pr_errno(err, "pid %d fd %d: %s: cannot reach the memfd", a->pid, a->fd, a->link);
	if (!sm)	/* once per memfd */
		err = check_memfd(a);
	if (!err && !sm)
		err = save_contents(a, &sm);
	mf = err ? NULL : xmalloc(sizeof(*mf));
	if (!mf)
		return err ? err : -ENOMEM;
	memfd_file__init(mf);
	err = fill_record(a, mf, sm);
	if (!err)
		err = flock_dump(a, &mf->locks, &mf->n_locks);
	if (!err)
		err = fown_dump(a, &mf->fown);
	if (err) {
		memfd_file__free_unpacked(mf, NULL);
		return err;
	}
	*ret = &mf->base;
	return 0;
}

static int memfd_dump_finish(struct img_dir *dir, bool complete)
{
	for (size_t i = 0; i < saved.nr; i++)
		free(saved.v[i].ext);
	free(saved.v);
	memset(&saved, 0, sizeof(saved));
	return 0;
}

static uint64_t memfd_group(const ProtobufCMessage *rec)
{
	return ((const MemfdFile *)rec)->ino | 1ULL << 63;
}

/* Restore-side state of the creating process: the new memfds, by old inode. */
static struct {
	struct made_memfd { uint64_t ino; int fd; } *v;
	size_t nr, cap;
} made;

/* Writes the extents back in image order (the raw image is read sequentially). */
static int fill_contents(const struct fd_open_arg *a, const MemfdFile *mf, int fd)
{
	_cleanup_free_ char *buf = NULL;
	struct img *img;
	int ret = 0;

	if (!mf->n_extents)
		return 0;
	img = img_open(a->dir, IMG_MAGIC_RAW, MEMFD_IMG, mf->ino);
	if (!img)
		return pr_errno(-errno, "pid %d: memfd %s: its contents are not in the image", a->pid, mf->name);
	buf = xmalloc(COPY_CHUNK);
	ret = buf ? 0 : -ENOMEM;
	for (size_t i = 0; !ret && i < mf->n_extents; i++) {
		const MemfdExtent *e = mf->extents[i];

		for (uint64_t done = 0; !ret && done < e->len; done += COPY_CHUNK) {
			size_t len = MIN(e->len - done, (uint64_t)COPY_CHUNK);

			ssize_t n;

			ret = img_read_raw(img, buf, len);
			n = ret ? 0 : pwrite(fd, buf, len, e->off + done);
			if (!ret && n != (ssize_t)len)
				ret = n < 0 ? -errno : -EIO;
		}
	}
	img_close(img);
	return ret ? pr_errno(ret, "pid %d: cannot refill memfd %s", a->pid, mf->name) : 0;
}

/* Adds the seals the memfd lacks (several descriptions of one memfd may each try). */
static int add_seals(const struct fd_open_arg *a, const MemfdFile *mf, int fd)
{
	int cur = fcntl(fd, F_GET_SEALS);
	uint32_t missing = cur < 0 ? mf->seals : mf->seals & ~(uint32_t)cur;

	if (cur >= 0 && (!missing || !fcntl(fd, F_ADD_SEALS, missing)))
		return 0;
	return pr_errno(-errno, "pid %d: memfd %s: cannot add seals %#x", a->pid, mf->name, mf->seals);
}

/*
 * Mode and owner before the seals (F_SEAL_EXEC, 6.3, forbids changing the exec bits). The
 * seals last: they may forbid writing and resizing. A memfd created without
 * MFD_ALLOW_SEALING reports F_SEAL_SEAL alone, which adding F_SEAL_SEAL reproduces.
 */
static int finish_memfd(const struct fd_open_arg *a, const MemfdFile *mf, int fd)
{
	if (fchown(fd, mf->uid, mf->gid) || fchmod(fd, mf->mode & 07777))
		return pr_errno(-errno, "pid %d: memfd %s: cannot set owner %u:%u and mode %#o", a->pid,
				mf->name, mf->uid, mf->gid, mf->mode & 07777);
	return mf->mapped ? 0 : add_seals(a, mf, fd);
}

static int make_memfd(const struct fd_open_arg *a, const MemfdFile *mf)
{
	int fd, ret;

	if (xgrow((void **)&made.v, &made.cap, made.nr + 1, sizeof(*made.v)))
		return -ENOMEM;
	fd = memfd_create(mf->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create memfd %s", a->pid, mf->name);
	ret = ftruncate(fd, mf->size) ? pr_errno(-errno, "pid %d: memfd %s: cannot set size %" PRIu64,
						 a->pid, mf->name, mf->size) : 0;
	if (!ret && !mf->mapped)
		ret = fill_contents(a, mf, fd);
	if (!ret)
		ret = finish_memfd(a, mf, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	made.v[made.nr++] = (struct made_memfd){ mf->ino, fd };
	return fd;
}

/* O_ASYNC first (it may reopen), then the position and the description's own locks. */
static int memfd_setup(const struct fd_open_arg *a, const MemfdFile *mf, int fd)
{
	int nfd = fown_restore(fd, mf->fown, mf->flags, a->pid, mf->name), err = 0;

	if (nfd < 0) {
		close(fd);
		return nfd;
	}
	if (mf->pos && lseek(nfd, mf->pos, SEEK_SET) < 0)
		err = pr_errno(-errno, "pid %d: memfd %s: cannot seek to %" PRIu64, a->pid, mf->name, mf->pos);
	if (!err)
		err = flock_restore_desc(nfd, mf->locks, mf->n_locks, a->pid, mf->name);
	if (err) {
		close(nfd);
		return err;
	}
	return nfd;
}

static int memfd_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const MemfdFile *mf = (const MemfdFile *)rec;
	int base = -1, fd;

	for (size_t i = 0; i < made.nr; i++)
		if (made.v[i].ino == mf->ino)
			base = made.v[i].fd;
	if (base < 0 && (base = make_memfd(a, mf)) < 0)
		return base;
	/* A new description of the same memfd, with this one's access mode and flags. */
	fd = reopen_fd(base, reopen_flags(mf->flags));
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot reopen memfd %s", a->pid, mf->name);
	return memfd_setup(a, mf, fd);
}

/* fcntl(F_ADD_SEALS) refuses an O_PATH descriptor: seal through a reader of our own. */
static int seal_mapped(const struct fd_open_arg *a, const MemfdFile *mf, int fd)
{
	int rfd = (mf->flags & O_PATH) ? reopen_fd(fd, O_RDONLY | O_CLOEXEC) : fd, ret;

	if (rfd < 0)
		return pr_errno(-errno, "pid %d: memfd %s: cannot reopen it to seal it", a->pid, mf->name);
	ret = add_seals(a, mf, rfd);
	if (rfd != fd)
		close(rfd);
	return ret;
}

static int memfd_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			      bool owner)
{
	const MemfdFile *mf = (const MemfdFile *)rec;
	int ret = 0;

	if (owner && mf->mapped)	/* every mapping of it exists now */
		ret = seal_mapped(a, mf, fd);
	if (!ret)
		ret = flock_restore_posix(fd, mf->locks, mf->n_locks, a->pid, mf->name);
	return ret;
}

static uint64_t memfd_shmem_ino(const ProtobufCMessage *rec)
{
	const MemfdFile *mf = (const MemfdFile *)rec;

	return mf->mapped ? mf->ino : 0;
}

const struct fd_kind fd_kind_memfd = {
	.name = "memfd",
	.desc = &memfd_file__descriptor,
	.match = memfd_match,
	.dump = memfd_dump,
	.dump_finish = memfd_dump_finish,
	.group = memfd_group,
	.open = memfd_open,
	.restore_late = memfd_restore_late,
	.shmem_ino = memfd_shmem_ino,
	.keeps_fown = true,
};
