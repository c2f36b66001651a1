/*
 * The fd table: which descriptors each process holds and which of them share one file
 * description. Orchestration only; what a description *is* belongs to its fd_kind.
 */
#define LOG_PREFIX "files: "
#include "files/files.h"
#include "files/fown.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/opts.h"
#include "image/img.h"
#include "ns/pidns.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

/* A description already in the image, and one descriptor through which we saw it. */
struct known_file {
	uint32_t id;
	pid_t pid;
	int fd;
	dev_t dev;
	ino_t ino;
};

struct files_dump {
	struct img_dir *dir;
	const struct crest_opts *opts;
	struct known_file *known;
	size_t nr_known, cap_known;
	FileEntry **entries;
	size_t nr_entries, cap_entries;
	/*
	 * Our copies of descriptions in flight (save_carried): known[] finds them by crest's pid
	 * and these numbers, so they stay open until the end of the dump, then are closed, which
	 * leaves the target's queues as they were.
	 */
	int *carried;
	size_t nr_carried, cap_carried;
	bool finished;		/* the kinds' dump_finish ran */
};

int files_dump_open(struct img_dir *dir, const struct crest_opts *opts, struct files_dump **ret)
{
	struct files_dump *fd = xzalloc(sizeof(*fd));

	if (!fd)
		return -ENOMEM;
	fd->dir = dir;
	fd->opts = opts;
	*ret = fd;
	return 0;
}

void files_dump_free(struct files_dump *fd)
{
	if (!fd)
		return;
	/* A failed dump still lets each kind drop its images and state. */
	for (size_t i = 0; !fd->finished && fd_kinds[i]; i++)
		if (fd_kinds[i]->dump_finish)
			fd_kinds[i]->dump_finish(fd->dir, false);
	for (size_t i = 0; i < fd->nr_entries; i++)
		file_entry__free_unpacked(fd->entries[i], NULL);
	free(fd->entries);
	for (size_t i = 0; i < fd->nr_carried; i++)
		close(fd->carried[i]);
	free(fd->carried);
	free(fd->known);
	free(fd);
}

const char *fdinfo_value(const char *fdinfo, const char *key)
{
	const char *p = strstr(fdinfo, key);

	return p ? p + strlen(key) : NULL;
}

/* fdinfo: "pos:\t<dec>" and "flags:\t0<octal>"; *text keeps the rest for the kinds. */
static int read_fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags, char **text)
{
	char path[64], *buf, *p;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return pr_errno(-errno, "pid %d fd %d: cannot read %s", pid, fd, path);
	p = strstr(buf, "pos:");
	*pos = p ? strtoull(p + 4, NULL, 10) : 0;
	p = strstr(buf, "flags:");
	*flags = p ? strtoul(p + 6, NULL, 8) : 0;
	*text = buf;
	return 0;
}

/*
 * Orders descriptor fd of pid against a known description: by device and inode, then by
 * kcmp(KCMP_FILE), which is 0 when both name one struct file and otherwise orders the two
 * (1: fd's is less, 2: greater; obfuscated kernel addresses, a stable total order while the
 * files stay open, kernel/kcmp.c since 3.5). An error counts as greater: a different file.
 */
static int cmp_known(const struct known_file *k, pid_t pid, int fd, const struct stat *st)
{
	if (st->st_dev != k->dev)
		return st->st_dev < k->dev ? -1 : 1;
	if (st->st_ino != k->ino)
		return st->st_ino < k->ino ? -1 : 1;
	switch (sys_kcmp(pid, k->pid, KCMP_FILE, fd, k->fd)) {
	case 0:
		return 0;
	case 1:
		return -1;
	default:
		return 1;
	}
}

/*
 * Two descriptors name one description when kcmp(KCMP_FILE) says their struct file is one.
 * known[] is kept sorted by cmp_known(), so a lookup takes O(log n) kcmp calls even when
 * thousands of descriptors are opens of one inode (a linear scan made 10000 opens of one file
 * cost 50 million kcmp calls). Returns the id, or 0 and in *pos where a new one goes.
 */
static int find_known(struct files_dump *fdump, pid_t pid, int fd, const struct stat *st,
		      size_t *pos)
{
	size_t lo = 0, hi = fdump->nr_known;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_known(&fdump->known[mid], pid, fd, st);

		if (!c)
			return fdump->known[mid].id;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*pos = lo;
	return 0;
}

static const struct fd_kind *match_kind(const struct fd_dump_arg *a)
{
	for (size_t i = 0; fd_kinds[i]; i++)
		if (fd_kinds[i]->match(a))
			return fd_kinds[i];
	return NULL;
}

static int add_entry(struct files_dump *fdump, const struct fd_kind *kind,
		     ProtobufCMessage *rec, FownState *fown, const struct fd_dump_arg *a,
		     size_t pos, uint32_t *ret_id)
{
	FileEntry *fe;
	size_t len = protobuf_c_message_get_packed_size(rec);

	if (xgrow((void **)&fdump->entries, &fdump->cap_entries, fdump->nr_entries + 1,
		  sizeof(*fdump->entries)) ||
	    xgrow((void **)&fdump->known, &fdump->cap_known, fdump->nr_known + 1,
		  sizeof(*fdump->known))) {
		free(fown);
		return -ENOMEM;
	}
	fe = xmalloc(sizeof(*fe));
	if (!fe) {
		free(fown);
		return -ENOMEM;
	}
	file_entry__init(fe);
	fe->fown = fown;	/* owned by fe from here on */
	fe->id = fdump->nr_entries + 1;
	fe->kind = xstrdup(kind->name);
	fe->payload.data = xmalloc(len);
	fe->payload.len = len;
	if (!fe->kind || !fe->payload.data) {
		file_entry__free_unpacked(fe, NULL);
		return -ENOMEM;
	}
	protobuf_c_message_pack(rec, fe->payload.data);
	fdump->entries[fdump->nr_entries++] = fe;
	memmove(&fdump->known[pos + 1], &fdump->known[pos],
		(fdump->nr_known++ - pos) * sizeof(*fdump->known));
	fdump->known[pos] = (struct known_file){
		fe->id, a->pid, a->fd, a->st->st_dev, a->st->st_ino };
	*ret_id = fe->id;
	return 0;
}

static int dump_new_file(struct files_dump *fdump, const struct fd_dump_arg *a, size_t pos,
			 uint32_t *ret_id)
{
	const struct fd_kind *kind = match_kind(a);
	ProtobufCMessage *rec = NULL;
	FownState *fown = NULL;
	int ret;

	if (!kind && a->via_pid) {
		pr_err("pid %d fd %d: %s in flight (SCM_RIGHTS) in its receive queue: cannot checkpoint this kind of descriptor yet",
		       a->via_pid, a->via_fd, a->link);
		return -EOPNOTSUPP;
	}
	if (!kind) {
		pr_err("pid %d fd %d: %s: cannot checkpoint this kind of descriptor yet",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	ret = kind->dump(a, &rec);
	if (ret)
		return ret;
	/* O_ASYNC owner and signal, the same for every kind that does not keep them itself */
	if (!kind->keeps_fown)
		ret = fown_dump(a, &fown);
	if (!ret)
		ret = add_entry(fdump, kind, rec, fown, a, pos, ret_id);
	protobuf_c_message_free_unpacked(rec, NULL);
	return ret;
}

/* Fills a's link, st, pos, flags and fdinfo (freed by the caller) for descriptor fd of pid. */
static int inspect_fd(pid_t pid, int fd, struct fd_dump_arg *a, char link[PATH_MAX],
		      struct stat *st, char **fdinfo)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, PATH_MAX - 1);
	if (n < 0 || stat(path, st))
		return pr_errno(-errno, "pid %d fd %d: cannot inspect %s", pid, fd, path);
	link[n] = '\0';
	a->st = st;
	return read_fdinfo(pid, fd, &a->pos, &a->flags, fdinfo);
}

static int save_carried(const struct fd_dump_arg *via, int fd, uint32_t *ret_id);

static int dump_one_fd(struct files_dump *fdump, int pidfd, pid_t pid, int fd, FdEntry *fe)
{
	char link[PATH_MAX];
	struct fd_dump_arg a = { .pid = pid, .fd = fd, .link = link, .dir = fdump->dir,
				 .opts = fdump->opts, .via_fd = -1, .save_carried = save_carried,
				 .files = fdump };
	_cleanup_free_ char *fdinfo = NULL;
	struct stat st;
	size_t pos = 0;
	int ret, id;

	ret = inspect_fd(pid, fd, &a, link, &st, &fdinfo);
	if (ret)
		return ret;
	a.fdinfo = fdinfo;
	fe->fd = fd;
	fe->cloexec = a.flags & O_CLOEXEC;
	a.flags &= ~O_CLOEXEC;
	id = find_known(fdump, pid, fd, &st, &pos);
	if (id) {
		fe->file_id = id;
		return 0;
	}
	a.lfd = sys_pidfd_getfd(pidfd, fd, 0);
	ret = dump_new_file(fdump, &a, pos, &fe->file_id);
	safe_close(a.lfd);
	return ret;
}

static int keep_carried(struct files_dump *fdump, int fd)
{
	if (xgrow((void **)&fdump->carried, &fdump->cap_carried, fdump->nr_carried + 1,
		  sizeof(*fdump->carried))) {
		close(fd);
		return -ENOMEM;
	}
	fdump->carried[fdump->nr_carried++] = fd;
	return 0;
}

/*
 * A description in flight, which no process may hold: our copy (fd, from a MSG_PEEK that
 * received it) stands for it. It is one description whether it is also open in a process of
 * the tree or not, so it is found in known[] (by kcmp against our copy) or saved as new; the
 * process holding the carrying socket's entry creates it at restore (fd_kind.carried).
 */
static int save_carried(const struct fd_dump_arg *via, int fd, uint32_t *ret_id)
{
	struct files_dump *fdump = via->files;
	char link[PATH_MAX];
	struct fd_dump_arg a = { .pid = getpid(), .fd = fd, .lfd = fd, .link = link,
				 .dir = fdump->dir, .opts = fdump->opts, .via_pid = via->pid,
				 .via_fd = via->fd, .save_carried = save_carried, .files = fdump };
	_cleanup_free_ char *fdinfo = NULL;
	struct stat st;
	size_t pos = 0;
	int ret, id;

	ret = keep_carried(fdump, fd);
	if (!ret)
		ret = inspect_fd(a.pid, fd, &a, link, &st, &fdinfo);
	if (ret)
		return ret;
	a.fdinfo = fdinfo;
	a.flags &= ~O_CLOEXEC;
	id = find_known(fdump, a.pid, fd, &st, &pos);
	if (id) {
		*ret_id = id;
		return 0;
	}
	/* the kind's messages name crest's pid and copy: say once where that copy comes from */
	pr_info("pid %d fd %d: %s in flight in the receive queue is crest's fd %d", via->pid, via->fd,
		link, fd);
	ret = dump_new_file(fdump, &a, pos, ret_id);
	/* a refusal (EOPNOTSUPP) is one line already; another failure gets its context */
	if (ret && ret != -EOPNOTSUPP)
		pr_err("pid %d fd %d: cannot save %s, in flight in its receive queue (SCM_RIGHTS)",
		       via->pid, via->fd, link);
	return ret;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The fd numbers of pid, sorted. */
static int list_fds(pid_t pid, int **ret, size_t *nr)
{
	char path[64];
	size_t cap = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return pr_errno(-errno, "pid %d: cannot list %s", pid, path);
	*ret = NULL;
	*nr = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (xgrow((void **)ret, &cap, *nr + 1, sizeof(**ret))) {
			closedir(d);
			return -ENOMEM;
		}
		(*ret)[(*nr)++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(*ret, *nr, sizeof(**ret), cmp_int);
	return 0;
}

static int write_fdinfo(struct img_dir *dir, pid_t pid, FdEntry *fes, size_t nr)
{
	/* Images name a process by the pid the tree sees. */
	struct img *img = img_create(dir, IMG_MAGIC_FDINFO, "fdinfo-%d.img", pidns_view(pid));
	int ret = 0;

	if (!img)
		return -errno;
	for (size_t i = 0; !ret && i < nr; i++)
		ret = img_write_msg(img, &fes[i].base);
	return ret ? (img_close(img), ret) : img_close(img);
}

int files_dump_process(struct files_dump *fdump, pid_t pid)
{
	_cleanup_free_ int *fds = NULL;
	_cleanup_free_ FdEntry *fes = NULL;
	_cleanup_close_ int pidfd = -1;
	size_t nr = 0;
	int ret;

	ret = list_fds(pid, &fds, &nr);
	if (ret)
		return ret;
	pidfd = sys_pidfd_open(pid, 0);
	if (pidfd < 0)
		return pr_errno(-errno, "pid %d: pidfd_open failed", pid);
	fes = xzalloc(nr * sizeof(*fes) + 1);
	if (!fes)
		return -ENOMEM;
	for (size_t i = 0; !ret && i < nr; i++) {
		fd_entry__init(&fes[i]);
		ret = dump_one_fd(fdump, pidfd, pid, fds[i], &fes[i]);
	}
	return ret ? ret : write_fdinfo(fdump->dir, pid, fes, nr);
}

int files_dump_finish(struct files_dump *fdump)
{
	struct img *img = img_create(fdump->dir, IMG_MAGIC_FILES, "files.img");
	int ret = 0;

	if (!img)
		return -errno;
	for (size_t i = 0; !ret && i < fdump->nr_entries; i++)
		ret = img_write_msg(img, &fdump->entries[i]->base);
	ret = ret ? (img_close(img), ret) : img_close(img);
	fdump->finished = true;
	for (size_t i = 0; fd_kinds[i]; i++)
		if (fd_kinds[i]->dump_finish) {
			int err = fd_kinds[i]->dump_finish(fdump->dir, ret == 0);

			ret = ret ? ret : err;
		}
	return ret;
}
