/*
 * Checking the raw files of an image (page data) on a second core during a restore.
 *
 * A process being restored reads its pages into memory at copy speed; checksumming them on
 * the way costs about half as long again, on the same core. When the machine has a core to
 * spare, the controlling `crest restore` checks every raw file on a thread of its own while
 * the processes fill their memory, and the processes skip the checksum. Nothing restored
 * runs before the check has passed: the controller waits for it before it lets the tree go.
 *
 * The thread runs while the controller forks the tree with raw clone3, which unlike fork()
 * takes no care of locks another thread holds: so it takes none. Everything it needs (the
 * descriptors, the buffer, the list) is set up before it starts; it only reads and hashes,
 * and the results are reported by the controller's thread after the join.
 */
#define LOG_PREFIX "img: "
#include "image/img.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

/* Small: populating a fresh buffer costs a host fault a page here, and it fits the cache. */
#define VERIFY_BUF (512UL << 10)
#define RAW_PREFIX "pages-"

struct verify_file {
	const InvFile *f;
	int fd;
	int err;		/* 0, -EIO (mismatch), or the read error */
};

struct img_verify {
	struct verify_file *files;
	size_t nr;
	char *buf;
	pthread_t thread;
	bool started;
};

static int verify_one(struct verify_file *vf, char *buf)
{
	struct xxh64_state xs;
	uint64_t left = vf->f->size;

	xxh64_init(&xs);
	while (left) {
		ssize_t n = read(vf->fd, buf, MIN(left, VERIFY_BUF));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		xxh64_update(&xs, buf, n);
		left -= n;
	}
	return xxh64_digest(&xs) == vf->f->xxh64 ? 0 : -EIO;
}

static void *verify_main(void *arg)
{
	struct img_verify *v = arg;

	for (size_t i = 0; i < v->nr; i++)
		v->files[i].err = verify_one(&v->files[i], v->buf);
	return NULL;
}

static int open_raw_files(struct img_dir *dir, struct img_verify *v)
{
	const Inventory *inv = imgdir_inventory(dir);

	v->files = xzalloc(inv->n_files * sizeof(*v->files) + 1);
	if (!v->files)
		return -ENOMEM;
	for (size_t i = 0; i < inv->n_files; i++) {
		const InvFile *f = inv->files[i];
		struct verify_file *vf = &v->files[v->nr];

		if (strncmp(f->name, RAW_PREFIX, strlen(RAW_PREFIX)))
			continue;
		vf->f = f;
		vf->fd = openat(imgdir_fd(dir), f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (vf->fd < 0)
			return pr_errno(-errno, "%s: cannot open", f->name);
		v->nr++;
	}
	return 0;
}

static void verify_free(struct img_verify *v)
{
	for (size_t i = 0; i < v->nr; i++)
		safe_close(v->files[i].fd);
	free(v->files);
	if (v->buf)
		munmap(v->buf, VERIFY_BUF);
	free(v);
}

int imgdir_verify_start(struct img_dir *dir, struct img_verify **ret)
{
	struct img_verify *v = xzalloc(sizeof(*v));
	int err;

	*ret = NULL;
	if (!v)
		return -ENOMEM;
	err = open_raw_files(dir, v);
	if (!err) {
		/* Populated now: the thread must not fault its way through it, nor allocate. */
		v->buf = mmap(NULL, VERIFY_BUF, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (v->buf == MAP_FAILED) {
			v->buf = NULL;
			err = pr_errno(-errno, "cannot allocate the checksum buffer");
		}
	}
	if (!err) {
		err = -pthread_create(&v->thread, NULL, verify_main, v);
		v->started = !err;
	}
	if (err) {
		verify_free(v);
		return err;
	}
	imgdir_raw_verified_elsewhere(dir);
	*ret = v;
	return 0;
}

int imgdir_verify_finish(struct img_verify *v)
{
	int ret = 0;

	if (!v)
		return 0;
	if (v->started)
		pthread_join(v->thread, NULL);
	for (size_t i = 0; i < v->nr; i++) {
		int err = v->files[i].err;

		if (!err)
			continue;
		if (err == -EIO)
			pr_err("%s: checksum mismatch (image damaged)", v->files[i].f->name);
		else if (err == -ENODATA)
			pr_err("%s: unexpected end of file (truncated)", v->files[i].f->name);
		else
			pr_errno(err, "%s: cannot read", v->files[i].f->name);
		ret = ret ?: err;
	}
	verify_free(v);
	return ret;
}
