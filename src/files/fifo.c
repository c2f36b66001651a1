/*
 * "fifo": an open file description of a named FIFO (S_ISFIFO, link is its path). A FIFO is a
 * pipe whose buffer lives with the inode while anyone has it open, so it is reopened by path
 * and its bytes in flight are written back once. They are copied at dump with tee(2), which
 * duplicates pipe buffers without consuming them: a --leave-running dump leaves the FIFO as
 * it was.
 *
 * Restore, in the one process that creates every description of a FIFO (group by inode):
 * open it O_RDWR|O_NONBLOCK first. That "anchor" is a reader and a writer at once, so it never
 * waits for a partner (fifo(7)) and keeps the buffer alive while the descriptions are opened
 * with their own access mode, O_NONBLOCK (a write-only open with no reader fails ENXIO
 * otherwise, and a blocking one would wait) and then given their saved flags.
 */
#define LOG_PREFIX "files/fifo: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fifo.pb-c.h"
#include "files/flock.h"
#include "files/fown.h"
#include "files/reopen.h"
#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

#define FIFO_IMG "pages-fifo-%" PRIx64 "-%" PRIu64 ".img"

/* O_PATH descriptors of a FIFO are only a path: "reg" reopens those. */
static bool fifo_match(const struct fd_dump_arg *a)
{
	return S_ISFIFO(a->st->st_mode) && a->link[0] == '/' && !(a->flags & O_PATH);
}

/* Dump-side state: FIFOs whose data is already saved. */
static struct {
	struct fifo_ino { uint64_t dev, ino; } *v;
	size_t nr, cap;
} saved;

static bool data_saved(uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < saved.nr; i++)
		if (saved.v[i].dev == dev && saved.v[i].ino == ino)
			return true;
	return false;
}

/*
 * A descriptor that can read the FIFO: our copy if the description reads, else a new reader
 * through /proc/PID/fd/N (O_NONBLOCK: it must not wait for a writer).
 */
static int read_end(const struct fd_dump_arg *a, bool *own)
{
	char path[64];
	int fd;

	*own = false;
	if (a->lfd >= 0 && (a->flags & O_ACCMODE) != O_WRONLY)
		return a->lfd;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot open the FIFO to copy its data", a->pid, a->fd, a->link);
	*own = true;
	return fd;
}

/* Copies what is queued into a scratch pipe with tee, and from there into *buf. */
static int peek_fifo(const struct fd_dump_arg *a, int capacity, char **buf, size_t *len)
{
	int tmp[2] = { -1, -1 }, ret = 0;
	bool own = false;
	int rd = read_end(a, &own);
	ssize_t n = 0;

	*buf = NULL;
	*len = 0;
	if (rd < 0)
		return rd;
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) || fcntl(tmp[1], F_SETPIPE_SZ, capacity) < capacity) {
		ret = pr_errno(-errno, "pid %d fd %d: cannot make a pipe of %d bytes to copy the FIFO's data",
			       a->pid, a->fd, capacity);
		goto out;
	}
	n = tee(rd, tmp[1], capacity, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {	/* EAGAIN: empty, with writers */
		ret = pr_errno(-errno, "pid %d fd %d: %s: tee failed", a->pid, a->fd, a->link);
		goto out;
	}
	if (n > 0) {
		*buf = xmalloc(n);
		ret = *buf ? read_all(tmp[0], *buf, n) : -ENOMEM;
		*len = n;
	}
out:
	if (own)
		close(rd);
	safe_close(tmp[0]);
	safe_close(tmp[1]);
	return ret;
}

static int save_data(const struct fd_dump_arg *a, int capacity)
{
	_cleanup_free_ char *buf = NULL;
	struct img *img;
	size_t len;
	int ret;

	if (xgrow((void **)&saved.v, &saved.cap, saved.nr + 1, sizeof(*saved.v)))
		return -ENOMEM;
	saved.v[saved.nr++] = (struct fifo_ino){ a->st->st_dev, a->st->st_ino };
	ret = peek_fifo(a, capacity, &buf, &len);
	if (ret || !len)
		return ret;
	img = img_create(a->dir, IMG_MAGIC_RAW, FIFO_IMG, (uint64_t)a->st->st_dev,
			 (uint64_t)a->st->st_ino);
	if (!img)
		return -errno;
	ret = img_write_raw(img, buf, len);
	return ret ? (img_close(img), ret) : img_close(img);
}

static int fifo_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	int capacity = a->lfd >= 0 ? fcntl(a->lfd, F_GETPIPE_SZ) : -1;
	FifoFile *ff;
	int err = 0;

	if (link_is_deleted(a->link)) {
		pr_err("pid %d fd %d: %s: the FIFO was deleted: crest reopens FIFOs by their path",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	if (capacity < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot read the FIFO's capacity", a->pid, a->fd, a->link);
	if (!data_saved(a->st->st_dev, a->st->st_ino))
		err = save_data(a, capacity);
	ff = err ? NULL : xmalloc(sizeof(*ff));
	if (!ff)
		return err ? err : -ENOMEM;
	fifo_file__init(ff);
	ff->path = xstrdup(a->link);
	ff->flags = a->flags;
	ff->dev = a->st->st_dev;
	ff->ino = a->st->st_ino;
	ff->has_capacity = true;
	ff->capacity = capacity;
	err = ff->path ? flock_dump(a, &ff->locks, &ff->n_locks) : -ENOMEM;
	if (!err)
		err = fown_dump(a, &ff->fown);
	if (err) {
		fifo_file__free_unpacked(ff, NULL);
		return err;
	}
	*ret = &ff->base;
	return 0;
}

static int fifo_dump_finish(struct img_dir *dir, bool complete)
{
	free(saved.v);
	memset(&saved, 0, sizeof(saved));
	return 0;
}

static uint64_t fifo_group(const ProtobufCMessage *rec)
{
	const FifoFile *ff = (const FifoFile *)rec;

	return (ff->dev << 40 ^ ff->ino) | 1ULL << 63;
}

/* Restore-side state of the creating process: the FIFOs opened, each with its anchor. */
static struct {
	struct made_fifo { uint64_t dev, ino; int fd; } *v;
	size_t nr, cap;
} made;

/* The saved bytes go back through the anchor (a writer; they fit: capacity is set first). */
static int refill(const struct fd_open_arg *a, const FifoFile *ff, int anchor)
{
	_cleanup_free_ char *buf = NULL;
	struct img *img = img_open(a->dir, IMG_MAGIC_RAW, FIFO_IMG, ff->dev, ff->ino);
	uint64_t len;
	int ret;

	if (!img)
		return errno == ENOENT ? 0 : -errno;	/* nothing was in flight */
	len = img_size(img);
	buf = xmalloc(len);
	ret = buf ? img_read_raw(img, buf, len) : -ENOMEM;
	img_close(img);
	if (!ret)
		ret = write_all(anchor, buf, len);
	return ret ? pr_errno(ret, "pid %d: %s: cannot refill the FIFO", a->pid, ff->path) : 0;
}

/*
 * Opens the anchor. Bytes already queued mean that someone outside the tree still holds the
 * FIFO (it outlived the dumped tree): writing the saved bytes again would duplicate them.
 */
static int open_anchor(const struct fd_open_arg *a, const FifoFile *ff)
{
	int fd = open(ff->path, O_RDWR | O_NONBLOCK | O_CLOEXEC), queued = 0;
	struct stat st;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open FIFO %s", a->pid, ff->path);
	if (fstat(fd, &st) || !S_ISFIFO(st.st_mode)) {
		pr_err("pid %d: %s is no longer a FIFO", a->pid, ff->path);
		close(fd);
		return -ESTALE;
	}
	if (!ioctl(fd, FIONREAD, &queued) && queued > 0) {
		pr_err("pid %d: FIFO %s already holds %d bytes: a process outside the tree has it open",
		       a->pid, ff->path, queued);
		close(fd);
		return -EBUSY;
	}
	return fd;
}

static int make_fifo(const struct fd_open_arg *a, const FifoFile *ff)
{
	int fd, ret = 0;

	if (xgrow((void **)&made.v, &made.cap, made.nr + 1, sizeof(*made.v)))
		return -ENOMEM;
	fd = open_anchor(a, ff);
	if (fd < 0)
		return fd;
	if (ff->has_capacity && fcntl(fd, F_GETPIPE_SZ) != (int)ff->capacity &&
	    fcntl(fd, F_SETPIPE_SZ, ff->capacity) < 0)
		ret = pr_errno(-errno, "pid %d: %s: cannot set the FIFO's capacity to %u", a->pid,
			       ff->path, ff->capacity);
	if (!ret)
		ret = refill(a, ff, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	made.v[made.nr++] = (struct made_fifo){ ff->dev, ff->ino, fd };
	return fd;
}

/* Status flags (O_NONBLOCK or not, O_APPEND, O_NOATIME), the O_ASYNC owner, then locks. */
static int fifo_setup(const struct fd_open_arg *a, const FifoFile *ff, int fd)
{
	int nfd, err;

	if (fcntl(fd, F_SETFL, ff->flags & ~(O_ACCMODE | O_ASYNC))) {
		err = pr_errno(-errno, "pid %d: %s: cannot set flags %#o", a->pid, ff->path, ff->flags);
		close(fd);
		return err;
	}
	nfd = fown_restore(fd, ff->fown, ff->flags, a->pid, ff->path);
	if (nfd < 0) {
		close(fd);
		return nfd;
	}
	err = flock_restore_desc(nfd, ff->locks, ff->n_locks, a->pid, ff->path);
	if (err) {
		close(nfd);
		return err;
	}
	return nfd;
}

static int fifo_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const FifoFile *ff = (const FifoFile *)rec;
	int anchor = -1, fd;

	for (size_t i = 0; i < made.nr; i++)
		if (made.v[i].dev == ff->dev && made.v[i].ino == ff->ino)
			anchor = made.v[i].fd;
	if (anchor < 0 && (anchor = make_fifo(a, ff)) < 0)
		return anchor;
	/* Through the anchor: the very FIFO filled above, even if the path changed since. */
	fd = reopen_fd(anchor, (ff->flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot reopen FIFO %s", a->pid, ff->path);
	return fifo_setup(a, ff, fd);
}

static int fifo_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			     bool owner)
{
	const FifoFile *ff = (const FifoFile *)rec;

	return flock_restore_posix(fd, ff->locks, ff->n_locks, a->pid, ff->path);
}

const struct fd_kind fd_kind_fifo = {
	.name = "fifo",
	.desc = &fifo_file__descriptor,
	.match = fifo_match,
	.dump = fifo_dump,
	.dump_finish = fifo_dump_finish,
	.group = fifo_group,
	.open = fifo_open,
	.restore_late = fifo_restore_late,
	.keeps_fown = true,
};
