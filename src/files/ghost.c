/*
 * "ghost": a regular file deleted while open (its link reads "PATH (deleted)" and st_nlink is
 * 0). Nothing on disk names it any more, so its contents go into the image, up to the ghost
 * limit (CRIU's --ghost-limit, 1 MiB by default). Restore recreates it at its old path (so the
 * descriptor shows the same "PATH (deleted)"), unlinks it at once, fills it, and opens every
 * description of the old inode through the new one (/proc/self/fd), so that descriptions that
 * shared the inode still do. All of them are created by one process (group by inode).
 */
#define LOG_PREFIX "files/ghost: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files/flock.h"
#include "cli/opts.h"
#include "files/fown.h"
#include "files/reopen.h"
#include "ghost.pb-c.h"
#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

#define COPY_CHUNK (64 * 1024)
/* Raw data files go by a "pages-" name (crest show, the image tests). */
#define GHOST_IMG "pages-ghost-%" PRIx64 "-%" PRIu64 ".img"

static bool ghost_match(const struct fd_dump_arg *a)
{
	return a->link[0] == '/' && S_ISREG(a->st->st_mode) && a->st->st_nlink == 0 &&
	       link_is_deleted(a->link) && !link_is_memfd(a->link);
}

/* Dump-side state: inodes whose contents are already in the image. */
static struct {
	struct ghost_ino { uint64_t dev, ino; } *v;
	size_t nr, cap;
} saved;

static bool contents_saved(uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < saved.nr; i++)
		if (saved.v[i].dev == dev && saved.v[i].ino == ino)
			return true;
	return false;
}

/*
 * A descriptor to read the contents through without touching the target: pread on our copy
 * of its description moves no offset; a write-only or O_DIRECT one (alignment) is replaced
 * by a new read-only description of the same inode, opened through /proc/PID/fd/N.
 */
static int contents_fd(const struct fd_dump_arg *a, bool *own)
{
	char path[64];
	int fd;

	*own = false;
	if (a->lfd >= 0 && (a->flags & O_ACCMODE) != O_WRONLY && !(a->flags & (O_DIRECT | O_PATH)))
		return a->lfd;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot open it to copy its contents", a->pid, a->fd, a->link);
	*own = true;
	return fd;
}

static int copy_contents(const struct fd_dump_arg *a, int fd, struct img *img)
{
	_cleanup_free_ char *buf = xmalloc(COPY_CHUNK);
	uint64_t size = a->st->st_size;
	int ret = buf ? 0 : -ENOMEM;

	for (uint64_t off = 0; !ret && off < size;) {
		size_t len = MIN(size - off, (uint64_t)COPY_CHUNK);

		ret = pread_all(fd, buf, len, off);
		if (ret)
			pr_errno(ret, "pid %d fd %d: %s: cannot read its contents at %" PRIu64, a->pid,
				 a->fd, a->link, off);
		else
			ret = img_write_raw(img, buf, len);
		off += len;
	}
	return ret;
}

/* pages-ghost-<dev>-<ino>.img: the st_size bytes of the file (none for an empty one). */
static int save_contents(const struct fd_dump_arg *a)
{
	struct img *img;
	bool own;
	int fd, ret;

	if (xgrow((void **)&saved.v, &saved.cap, saved.nr + 1, sizeof(*saved.v)))
		return -ENOMEM;
	saved.v[saved.nr++] = (struct ghost_ino){ a->st->st_dev, a->st->st_ino };
	if (!a->st->st_size)
		return 0;
	fd = contents_fd(a, &own);
	if (fd < 0)
		return fd;
	img = img_create(a->dir, IMG_MAGIC_RAW, GHOST_IMG,
			 (uint64_t)a->st->st_dev, (uint64_t)a->st->st_ino);
	ret = img ? copy_contents(a, fd, img) : -errno;
	if (img)
		ret = ret ? (img_close(img), ret) : img_close(img);
	if (own)
		close(fd);
	return ret;
}

static GhostFile *ghost_file_new(const struct fd_dump_arg *a)
{
	GhostFile *gf = xmalloc(sizeof(*gf));

	if (!gf)
		return NULL;
	ghost_file__init(gf);
	gf->path = xstrdup(a->link);
	if (!gf->path) {
		free(gf);
		return NULL;
	}
	gf->path[strlen(gf->path) - strlen(DELETED_SUFFIX)] = '\0';
	gf->flags = a->flags;
	gf->pos = a->pos;
	gf->mode = a->st->st_mode;
	gf->uid = a->st->st_uid;
	gf->gid = a->st->st_gid;
	gf->size = a->st->st_size;
	gf->dev = a->st->st_dev;
	gf->ino = a->st->st_ino;
	gf->has_mtime_ns = true;
	gf->mtime_ns = (int64_t)a->st->st_mtim.tv_sec * 1000000000 + a->st->st_mtim.tv_nsec;
	return gf;
}

static int ghost_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	uint64_t limit = a->opts->ghost_limit;	/* --ghost-limit, 1 MiB by default as CRIU's */
	GhostFile *gf;
	int err = 0;

	if ((uint64_t)a->st->st_size > limit) {
		pr_err("pid %d fd %d: %s: deleted file of %" PRIu64 " bytes is larger than the ghost limit of %" PRIu64 " bytes (--ghost-limit)",
		       a->pid, a->fd, a->link, (uint64_t)a->st->st_size, limit);
		return -EFBIG;
	}
	if (!contents_saved(a->st->st_dev, a->st->st_ino))
		err = save_contents(a);
	gf = err ? NULL : ghost_file_new(a);
	if (!gf)
		return err ? err : -ENOMEM;
	err = flock_dump(a, &gf->locks, &gf->n_locks);
	if (!err)
		err = fown_dump(a, &gf->fown);
	if (err) {
		ghost_file__free_unpacked(gf, NULL);
		return err;
	}
	*ret = &gf->base;
	return 0;
}

static int ghost_dump_finish(struct img_dir *dir, bool complete)
{
	free(saved.v);
	memset(&saved, 0, sizeof(saved));
	return 0;
}

/* Every description of one deleted inode is created by one process, from one new inode. */
static uint64_t ghost_group(const ProtobufCMessage *rec)
{
	const GhostFile *gf = (const GhostFile *)rec;

	return (gf->dev << 40 ^ gf->ino) | 1ULL << 63;
}

/* Restore-side state of the creating process: the new inodes, each held by an anchor fd. */
static struct {
	struct made_ghost { uint64_t dev, ino; int fd; } *v;
	size_t nr, cap;
} made;

/*
 * Creates the file at its old path, where the name is free (a deleted file's usually is); a
 * new file there since gets a neighbour's name instead, which the descriptor then shows.
 * Unlinked at once: it is a ghost again before it holds anything.
 */
static int create_unlinked(const struct fd_open_arg *a, const GhostFile *gf)
{
	char *alt = NULL;
	const char *name = gf->path;
	int fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST &&
	    asprintf(&alt, "%s.crest-ghost-%" PRIu64, gf->path, gf->ino) > 0) {
		name = alt;
		fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			pr_warn("pid %d: %s exists again: the deleted file comes back as %s", a->pid,
				gf->path, alt);
	}
	if (fd < 0) {
		fd = pr_errno(-errno, "pid %d: cannot recreate deleted file %s", a->pid, name);
	} else if (unlink(name)) {
		int err = pr_errno(-errno, "pid %d: cannot unlink recreated %s", a->pid, name);

		close(fd);
		fd = err;
	}
	free(alt);
	return fd;
}

static int fill_contents(const struct fd_open_arg *a, const GhostFile *gf, int fd)
{
	_cleanup_free_ char *buf = NULL;
	struct img *img;
	int ret = 0;

	if (!gf->size)
		return 0;
	img = img_open(a->dir, IMG_MAGIC_RAW, GHOST_IMG, gf->dev, gf->ino);
	if (!img)
		return pr_errno(-errno, "pid %d: %s: the contents of the deleted file are not in the image",
				a->pid, gf->path);
	if (img_size(img) != gf->size)
		ret = pr_errno(-EINVAL, "%s: holds %" PRIu64 " bytes, %s had %" PRIu64, img_name(img),
			       img_size(img), gf->path, gf->size);
	buf = ret ? NULL : xmalloc(COPY_CHUNK);
	if (!ret && !buf)
		ret = -ENOMEM;
	for (uint64_t off = 0; !ret && off < gf->size; off += COPY_CHUNK) {
		size_t len = MIN(gf->size - off, (uint64_t)COPY_CHUNK);

		ret = img_read_raw(img, buf, len);
		if (!ret)
			ret = write_all(fd, buf, len);
	}
	img_close(img);
	return ret ? pr_errno(ret, "pid %d: cannot refill deleted file %s", a->pid, gf->path) : 0;
}

/* Owner, mode and times last: fchown clears set-id bits, writing moves the mtime. */
static int set_attrs(const struct fd_open_arg *a, const GhostFile *gf, int fd)
{
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT } };

	if (fchown(fd, gf->uid, gf->gid) || fchmod(fd, gf->mode & 07777))
		return pr_errno(-errno, "pid %d: %s: cannot set owner %u:%u and mode %#o", a->pid,
				gf->path, gf->uid, gf->gid, gf->mode & 07777);
	times[1].tv_sec = gf->mtime_ns / 1000000000;
	times[1].tv_nsec = gf->mtime_ns % 1000000000;
	if (gf->has_mtime_ns && futimens(fd, times))
		return pr_errno(-errno, "pid %d: %s: cannot set its modification time", a->pid, gf->path);
	return 0;
}

static int make_ghost(const struct fd_open_arg *a, const GhostFile *gf)
{
	int fd, ret;

	if (xgrow((void **)&made.v, &made.cap, made.nr + 1, sizeof(*made.v)))
		return -ENOMEM;
	fd = create_unlinked(a, gf);
	if (fd < 0)
		return fd;
	ret = fill_contents(a, gf, fd);
	if (!ret && ftruncate(fd, gf->size))
		ret = pr_errno(-errno, "pid %d: %s: cannot set its size", a->pid, gf->path);
	if (!ret)
		ret = set_attrs(a, gf, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	made.v[made.nr++] = (struct made_ghost){ gf->dev, gf->ino, fd };
	return fd;
}

static int ghost_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const GhostFile *gf = (const GhostFile *)rec;
	int anchor = -1, fd, nfd, err;

	for (size_t i = 0; i < made.nr; i++)
		if (made.v[i].dev == gf->dev && made.v[i].ino == gf->ino)
			anchor = made.v[i].fd;
	if (anchor < 0 && (anchor = make_ghost(a, gf)) < 0)
		return anchor;
	fd = reopen_fd(anchor, reopen_flags(gf->flags));
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot reopen deleted file %s", a->pid, gf->path);
	nfd = fown_restore(fd, gf->fown, gf->flags, a->pid, gf->path);
	if (nfd < 0) {
		close(fd);
		return nfd;
	}
	err = 0;
	if (gf->pos && lseek(nfd, gf->pos, SEEK_SET) < 0)
		err = pr_errno(-errno, "pid %d: %s: cannot seek to %" PRIu64, a->pid, gf->path, gf->pos);
	if (!err)
		err = flock_restore_desc(nfd, gf->locks, gf->n_locks, a->pid, gf->path);
	if (err) {
		close(nfd);
		return err;
	}
	return nfd;
}

static int ghost_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			      bool owner)
{
	const GhostFile *gf = (const GhostFile *)rec;

	return flock_restore_posix(fd, gf->locks, gf->n_locks, a->pid, gf->path);
}

const struct fd_kind fd_kind_ghost = {
	.name = "ghost",
	.desc = &ghost_file__descriptor,
	.match = ghost_match,
	.dump = ghost_dump,
	.dump_finish = ghost_dump_finish,
	.group = ghost_group,
	.open = ghost_open,
	.restore_late = ghost_restore_late,
	.keeps_fown = true,
};
