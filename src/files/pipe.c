/*
 * "pipe": one end of an anonymous pipe. Both ends (and every fd of each) refer to one pipe
 * inode; the bytes in flight are saved once per pipe in pipes-data.img. They are copied with
 * tee(2), which duplicates pipe buffers without consuming them, so a --leave-running dump
 * leaves the pipe exactly as it was.
 */
#define LOG_PREFIX "files/pipe: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "files.pb-c.h"
#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

static bool pipe_match(const struct fd_dump_arg *a)
{
	return S_ISFIFO(a->st->st_mode) && !strncmp(a->link, "pipe:[", 6);
}

/* Dump-side state: pipes whose data is already saved, and the data image. */
static struct {
	uint64_t *inos;
	size_t nr, cap;
	struct img *data_img;
} dumped;

static bool pipe_seen(uint64_t ino)
{
	for (size_t i = 0; i < dumped.nr; i++)
		if (dumped.inos[i] == ino)
			return true;
	return false;
}

/* A descriptor that can read the pipe: ours if it is the read end, else reopen via /proc. */
static int open_read_end(const struct fd_dump_arg *a)
{
	char path[64];

	if ((a->flags & O_ACCMODE) == O_RDONLY && a->lfd >= 0)
		return fcntl(a->lfd, F_DUPFD_CLOEXEC, 0);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", a->pid, a->fd);
	return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

/* Duplicates what is queued in the pipe into a scratch pipe and reads it from there. */
static int peek_pipe(const struct fd_dump_arg *a, int capacity, ProtobufCBinaryData *data)
{
	int rd = open_read_end(a), tmp[2] = { -1, -1 }, ret = 0;
	ssize_t n = 0;

	if (rd < 0 || pipe2(tmp, O_CLOEXEC | O_NONBLOCK)) {
		ret = pr_errno(-errno, "pid %d fd %d: cannot open the pipe to copy its data", a->pid, a->fd);
		goto out;
	}
	if (fcntl(tmp[1], F_SETPIPE_SZ, capacity) < capacity) {
		ret = pr_errno(-errno, "pid %d fd %d: cannot size a pipe of %d bytes to copy the data",
			       a->pid, a->fd, capacity);
		goto out;
	}
	n = tee(rd, tmp[1], capacity, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		ret = pr_errno(-errno, "pid %d fd %d: tee failed", a->pid, a->fd);
		goto out;
	}
	data->len = n > 0 ? n : 0;
	data->data = xmalloc(data->len);
	if (!data->data)
		ret = -ENOMEM;
	else if (data->len)
		ret = read_all(tmp[0], data->data, data->len);
out:
	safe_close(rd);
	safe_close(tmp[0]);
	safe_close(tmp[1]);
	return ret;
}

static int save_pipe_data(const struct fd_dump_arg *a, uint64_t ino, int capacity)
{
	PipeData pd = PIPE_DATA__INIT;
	int ret;

	if (xgrow((void **)&dumped.inos, &dumped.cap, dumped.nr + 1, sizeof(*dumped.inos)))
		return -ENOMEM;
	dumped.inos[dumped.nr++] = ino;
	ret = peek_pipe(a, capacity, &pd.data);
	if (ret || !pd.data.len) {
		free(pd.data.data);
		return ret;
	}
	if (!dumped.data_img)
		dumped.data_img = img_create(a->dir, IMG_MAGIC_PIPE_DATA, "pipes-data.img");
	pd.pipe_ino = ino;
	ret = dumped.data_img ? img_write_msg(dumped.data_img, &pd.base) : -errno;
	free(pd.data.data);
	return ret;
}

static int pipe_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	int capacity = a->lfd >= 0 ? fcntl(a->lfd, F_GETPIPE_SZ) : -1;
	PipeFile *pf;
	int err = 0;

	if (capacity < 0)
		return pr_errno(-errno, "pid %d fd %d: cannot read the pipe's capacity", a->pid, a->fd);
	if (!pipe_seen(a->st->st_ino))
		err = save_pipe_data(a, a->st->st_ino, capacity);
	if (err)
		return err;
	pf = xmalloc(sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pipe_file__init(pf);
	pf->pipe_ino = a->st->st_ino;
	pf->flags = a->flags;
	pf->has_capacity = true;
	pf->capacity = capacity;
	*ret = &pf->base;
	return 0;
}

static int pipe_dump_finish(struct img_dir *dir, bool complete)
{
	int ret = dumped.data_img ? img_close(dumped.data_img) : 0;

	dumped.data_img = NULL;
	free(dumped.inos);
	memset(&dumped, 0, sizeof(dumped));
	return ret;
}

static uint64_t pipe_group(const ProtobufCMessage *rec)
{
	return ((const PipeFile *)rec)->pipe_ino;
}

/* Restore-side state of the creating process: the pipes it made, both ends open. */
struct made_pipe {
	uint64_t ino;
	int fds[2];
};
static struct made_pipe *made;
static size_t nr_made, cap_made;

/* Finds the saved bytes of pipe ino (NULL data if it had none). */
static int load_data(struct img_dir *dir, uint64_t ino, PipeData **ret)
{
	struct img *img = img_open(dir, IMG_MAGIC_PIPE_DATA, "pipes-data.img");
	int err = 0;

	*ret = NULL;
	if (!img)
		return errno == ENOENT ? 0 : -errno;
	while (!err) {
		PipeData *pd;

		err = img_read(img, pipe_data, &pd);
		if (err || !pd)
			break;
		if (pd->pipe_ino == ino) {
			*ret = pd;
			break;
		}
		pipe_data__free_unpacked(pd, NULL);
	}
	img_close(img);
	return err;
}

static int make_pipe(const struct fd_open_arg *a, const PipeFile *pf, struct made_pipe **ret)
{
	struct made_pipe *mp;
	PipeData *pd;
	int err;

	if (xgrow((void **)&made, &cap_made, nr_made + 1, sizeof(*made)))
		return -ENOMEM;
	mp = &made[nr_made];
	if (pipe2(mp->fds, O_CLOEXEC))
		return pr_errno(-errno, "pid %d: cannot create pipe", a->pid);
	mp->ino = pf->pipe_ino;
	nr_made++;
	if (pf->has_capacity && fcntl(mp->fds[1], F_SETPIPE_SZ, pf->capacity) < 0)
		return pr_errno(-errno, "pid %d: cannot set pipe capacity %u", a->pid, pf->capacity);
	err = load_data(a->dir, pf->pipe_ino, &pd);
	if (!err && pd)
		err = write_all(mp->fds[1], pd->data.data, pd->data.len);
	if (pd)
		pipe_data__free_unpacked(pd, NULL);
	if (err)
		return pr_errno(err, "pid %d: cannot refill pipe", a->pid);
	*ret = mp;
	return 0;
}

static int pipe_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const PipeFile *pf = (const PipeFile *)rec;
	struct made_pipe *mp = NULL;
	int end = (pf->flags & O_ACCMODE) == O_RDONLY ? 0 : 1, fd, err;

	for (size_t i = 0; i < nr_made; i++)
		if (made[i].ino == pf->pipe_ino)
			mp = &made[i];
	if (!mp) {
		err = make_pipe(a, pf, &mp);
		if (err)
			return err;
	}
	fd = fcntl(mp->fds[end], F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot duplicate pipe end", a->pid);
	if (fcntl(fd, F_SETFL, pf->flags & ~O_ACCMODE) < 0) {
		err = pr_errno(-errno, "pid %d: cannot set pipe flags %#o", a->pid, pf->flags);
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_pipe = {
	.name = "pipe",
	.desc = &pipe_file__descriptor,
	.match = pipe_match,
	.dump = pipe_dump,
	.dump_finish = pipe_dump_finish,
	.group = pipe_group,
	.open = pipe_open,
};
