/*
 * "inotify": an inotify instance and its watches.
 *
 * The watches come from /proc/PID/fdinfo/N (fs/notify/fdinfo.c, 3.8), one line per watch,
 * numbers in hex, in no particular order:
 *
 *   inotify wd:2 ino:35d sdev:fe00000 mask:84000002 ignored_mask:0 fhandle-bytes:8
 *           fhandle-type:1 f_handle:5d03000000000000
 *
 * The kernel knows the watched inode, not a path. The dump opens the inode from its file
 * handle (open_by_handle_at on a mount of that filesystem, CAP_DAC_READ_SEARCH) and keeps the
 * path /proc/self/fd shows for it, after checking that the path names that very inode (a
 * non-directory may come back as a disconnected dentry whose "path" is only its name). A watch
 * on a deleted inode, or on a filesystem that gives no file handle, fails the dump.
 *
 * Watch descriptors: the kernel hands them out increasing from 1 (idr_alloc_cyclic), never
 * reusing a freed one until it wraps. The program knows its watches by wd, so restore creates
 * them in ascending wd order and, where the original had a gap (watches removed before the
 * dump), burns the missing numbers by adding and removing a watch. Every removal queues an
 * IN_IGNORED event, so while numbers are being burnt every watch has an inert mask (only the
 * flag IN_DONT_FOLLOW: the kernel accepts any inotify bit and then reports only IN_UNMOUNT),
 * the queue is drained, and only then do the watches get their real masks. The allocation
 * cursor is restored only up to the highest live wd: if the original had removed watches
 * above it, its next new watch would have got a higher number than the restored one gets.
 *
 * Events already queued are not saved: the kernel offers no way to read them without
 * consuming them. The dump reads their size (FIONREAD) and warns, naming the process and fd,
 * when there are any: they are lost at restore.
 */
#define LOG_PREFIX "files/inotify: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include "inotify.pb-c.h"
#include "util/log.h"
#include "util/util.h"

/* The most watch descriptors restore burns to reach the dumped numbers (~3 syscalls each). */
#define MAX_BURNT_WDS (1U << 20)

static bool inotify_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:inotify");
}

/* fdinfo shows s_dev in the kernel's encoding: major above bit 20. */
static dev_t kdev_to_dev(uint32_t sdev)
{
	return makedev(sdev >> 20, sdev & 0xfffff);
}

/* One fdinfo watch line, decoded. */
struct raw_watch {
	uint32_t wd, sdev, mask;
	uint64_t ino;
	struct file_handle *fh;
};

static int parse_handle(const char *hex, unsigned int bytes, int type, struct file_handle **ret)
{
	struct file_handle *fh;

	if (!bytes || bytes > MAX_HANDLE_SZ || strspn(hex, "0123456789abcdef") < 2 * bytes)
		return -EINVAL;
	fh = xmalloc(sizeof(*fh) + bytes);
	if (!fh)
		return -ENOMEM;
	fh->handle_bytes = bytes;
	fh->handle_type = type;
	for (unsigned int i = 0; i < bytes; i++)
		sscanf(hex + 2 * i, "%2hhx", &fh->f_handle[i]);
	*ret = fh;
	return 0;
}

static int parse_watch(const struct fd_dump_arg *a, const char *line, struct raw_watch *w)
{
	unsigned int ignored, bytes;
	int type, hex = 0, n, ret;
	dev_t dev;

	n = sscanf(line, "inotify wd:%x ino:%" SCNx64 " sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%n",
		   &w->wd, &w->ino, &w->sdev, &w->mask, &ignored, &bytes, &type, &hex);
	if (n < 4) {
		pr_err("pid %d fd %d: unexpected inotify fdinfo line: %.80s", a->pid, a->fd, line);
		return -EINVAL;
	}
	ret = n == 7 && hex ? parse_handle(line + hex, bytes, type, &w->fh) : -EINVAL;
	dev = kdev_to_dev(w->sdev);
	if (ret == -EINVAL)
		pr_err("pid %d fd %d: inotify watch %u on inode %" PRIu64 " of device %u:%u: the filesystem gives no file handle, so its path cannot be found",
		       a->pid, a->fd, w->wd, w->ino, major(dev), minor(dev));
	return ret;
}

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * The mount point, as pid sees it, of a mount of filesystem sdev. A mount of the whole
 * filesystem (root "/") is preferred: a bind mount of a subtree may not reach the inode.
 */
static int find_mount(pid_t pid, uint32_t sdev, char *out, size_t size)
{
	char path[64], root[PATH_MAX], mnt[PATH_MAX];
	_cleanup_free_ char *info = NULL;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", pid);
	info = read_file_at(AT_FDCWD, path, NULL);
	if (!info)
		return pr_errno(-errno, "pid %d: cannot read %s", pid, path);
	for (char *line = info; line && *line; line = strchr(line, '\n')) {
		unsigned int maj, min;

		line += *line == '\n';
		if (sscanf(line, "%*u %*u %u:%u %4095s %4095s", &maj, &min, root, mnt) != 4 ||
		    makedev(maj, min) != kdev_to_dev(sdev) || (found && strcmp(root, "/")))
			continue;
		unescape(mnt);
		snprintf(out, size, "%s", mnt);
		found = true;
		if (!strcmp(root, "/"))
			break;
	}
	return found ? 0 : -ENOENT;
}

/* A descriptor of a mount of filesystem sdev, for open_by_handle_at; cached per sdev. */
struct mount_cache {
	uint32_t sdev;
	int fd;
};

static int mount_fd(const struct fd_dump_arg *a, struct mount_cache *mc, uint32_t sdev)
{
	char mnt[PATH_MAX], path[PATH_MAX + 64];
	int ret;

	if (mc->fd >= 0 && mc->sdev == sdev)
		return mc->fd;
	mc->fd = safe_close(mc->fd);
	ret = find_mount(a->pid, sdev, mnt, sizeof(mnt));
	if (ret == -ENOENT)
		pr_err("pid %d fd %d: inotify watches a file of device %u:%u, which pid %d has no mount of",
		       a->pid, a->fd, major(kdev_to_dev(sdev)), minor(kdev_to_dev(sdev)), a->pid);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/proc/%d/root%s", a->pid, mnt);
	/* open_by_handle_at takes no O_PATH descriptor for the mount (EBADF) */
	mc->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mc->fd < 0)
		return pr_errno(-errno, "pid %d fd %d: cannot open mount %s", a->pid, a->fd, path);
	mc->sdev = sdev;
	return mc->fd;
}

/* The path of the inode open at hfd, checked to name that inode. */
static int handle_path(const struct fd_dump_arg *a, const struct raw_watch *rw, int hfd,
		       InotifyWatch *w)
{
	char proc[64], path[PATH_MAX];
	struct stat hst, pst;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", hfd);
	n = readlink(proc, path, sizeof(path) - 1);
	if (n < 0 || fstat(hfd, &hst))
		return pr_errno(-errno, "pid %d fd %d: inotify watch %u: cannot inspect the watched inode",
				a->pid, a->fd, rw->wd);
	path[n] = '\0';
	if (n > 10 && !strcmp(path + n - 10, " (deleted)")) {
		pr_err("pid %d fd %d: inotify watch %u is on a deleted file (%s): cannot restore it",
		       a->pid, a->fd, rw->wd, path);
		return -EOPNOTSUPP;
	}
	if (path[0] != '/' || fstatat(AT_FDCWD, path, &pst, AT_SYMLINK_NOFOLLOW) ||
	    pst.st_ino != hst.st_ino || pst.st_dev != hst.st_dev) {
		pr_err("pid %d fd %d: inotify watch %u: no path found for inode %" PRIu64 " (got '%s')",
		       a->pid, a->fd, rw->wd, rw->ino, path);
		return -EOPNOTSUPP;
	}
	w->path = xstrdup(path);
	w->has_ino = w->has_dev = w->has_mode = true;
	w->ino = hst.st_ino;
	w->dev = hst.st_dev;
	w->mode = hst.st_mode;
	return w->path ? 0 : -ENOMEM;
}

/* Fills w (wd, mask, path) from one watch line. */
static int dump_watch(const struct fd_dump_arg *a, struct mount_cache *mc, const char *line,
		      InotifyWatch *w)
{
	struct raw_watch rw = { 0 };
	int mfd, hfd, ret;

	ret = parse_watch(a, line, &rw);
	if (ret)
		return ret;
	mfd = mount_fd(a, mc, rw.sdev);
	hfd = mfd < 0 ? mfd : open_by_handle_at(mfd, rw.fh, O_PATH | O_CLOEXEC);
	ret = hfd < 0 && mfd >= 0 ? -errno : 0;
	free(rw.fh);
	if (mfd < 0)
		return mfd;
	if (ret)
		return pr_errno(ret, "pid %d fd %d: inotify watch %u: cannot open inode %" PRIu64 " by its file handle",
				a->pid, a->fd, rw.wd, rw.ino);
	w->wd = rw.wd;
	w->mask = rw.mask;
	ret = handle_path(a, &rw, hfd, w);
	close(hfd);
	return ret;
}

static int add_watch(const struct fd_dump_arg *a, struct mount_cache *mc, const char *line,
		     InotifyFile *inf, size_t *cap)
{
	InotifyWatch *w;
	int ret;

	if (xgrow((void **)&inf->watches, cap, inf->n_watches + 1, sizeof(*inf->watches)))
		return -ENOMEM;
	w = xmalloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	inotify_watch__init(w);
	inf->watches[inf->n_watches++] = w;
	ret = dump_watch(a, mc, line, w);
	if (!ret)
		pr_debug("pid %d fd %d: inotify wd %u mask %#x on %s", a->pid, a->fd, w->wd,
			 w->mask, w->path);
	return ret;
}

static int cmp_wd(const void *x, const void *y)
{
	const InotifyWatch *a = *(InotifyWatch *const *)x, *b = *(InotifyWatch *const *)y;

	return a->wd < b->wd ? -1 : a->wd > b->wd;
}

/* Queued events cannot be read without consuming them: say how much will be lost. */
static void warn_queued(const struct fd_dump_arg *a)
{
	int bytes = 0;

	if (a->lfd >= 0 && !ioctl(a->lfd, FIONREAD, &bytes) && bytes > 0)
		pr_warn("pid %d fd %d: inotify has %d bytes of queued events: they are not saved and will be missing after restore",
			a->pid, a->fd, bytes);
}

static int inotify_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct mount_cache mc = { .fd = -1 };
	InotifyFile *inf = xmalloc(sizeof(*inf));
	size_t cap = 0;
	int err = 0;

	if (!inf)
		return -ENOMEM;
	inotify_file__init(inf);
	inf->flags = a->flags;
	for (const char *line = a->fdinfo; !err && line && *line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (!strncmp(line, "inotify ", 8))
			err = add_watch(a, &mc, line, inf, &cap);
	}
	safe_close(mc.fd);
	if (err) {
		inotify_file__free_unpacked(inf, NULL);
		return err;
	}
	qsort(inf->watches, inf->n_watches, sizeof(*inf->watches), cmp_wd);
	warn_queued(a);
	*ret = &inf->base;
	return 0;
}

/* ---- restore ---- */

/* Restore refuses a path that names another inode than the one watched at dump. */
static int check_same_file(const struct fd_open_arg *a, const InotifyWatch *w)
{
	struct stat st;

	if (fstatat(AT_FDCWD, w->path, &st, AT_SYMLINK_NOFOLLOW))
		return pr_errno(-errno, "pid %d: inotify watch %u: cannot find %s", a->pid, w->wd,
				w->path);
	if (w->has_ino && (st.st_ino != w->ino || st.st_dev != w->dev)) {
		pr_err("pid %d: inotify watch %u: %s is another file than at dump (inode %llu, was %" PRIu64 ")",
		       a->pid, w->wd, w->path, (unsigned long long)st.st_ino, w->ino);
		return -ESTALE;
	}
	return 0;
}

/* Throws away whatever is queued (IN_IGNORED of burnt wds). fd is non-blocking. */
static int drain(const struct fd_open_arg *a, int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (errno != EAGAIN)
		return pr_errno(-errno, "pid %d: cannot drain a new inotify", a->pid);
	return 0;
}

/* Adds w inert at exactly wd w->wd, burning lower numbers; *burnt counts them. */
static int place_watch(const struct fd_open_arg *a, int fd, const InotifyWatch *w, uint32_t *burnt)
{
	for (;;) {
		int wd = inotify_add_watch(fd, w->path, IN_DONT_FOLLOW), ret;

		if (wd < 0)
			return pr_errno(-errno, "pid %d: cannot watch %s", a->pid, w->path);
		if ((uint32_t)wd == w->wd)
			return 0;
		if ((uint32_t)wd > w->wd || ++*burnt > MAX_BURNT_WDS) {
			pr_err("pid %d: inotify watch %u on %s: got watch descriptor %d instead",
			       a->pid, w->wd, w->path, wd);
			return -ERANGE;
		}
		if (inotify_rm_watch(fd, wd))
			return pr_errno(-errno, "pid %d: cannot remove inotify watch %d", a->pid, wd);
		ret = drain(a, fd);
		if (ret)
			return ret;
	}
}

/* Gives a placed watch its real mask; the kernel replaces the mask of the inode's watch. */
static int arm_watch(const struct fd_open_arg *a, int fd, const InotifyWatch *w)
{
	int wd = inotify_add_watch(fd, w->path, w->mask | IN_DONT_FOLLOW);

	if (wd < 0)
		return pr_errno(-errno, "pid %d: cannot watch %s with mask %#x", a->pid, w->path,
				w->mask);
	if ((uint32_t)wd != w->wd) {
		pr_err("pid %d: inotify watch %u on %s came back as %d", a->pid, w->wd, w->path, wd);
		return -ESTALE;
	}
	return 0;
}

static int restore_watches(const struct fd_open_arg *a, int fd, const InotifyFile *inf)
{
	uint32_t burnt = 0;
	int ret = 0;

	for (size_t i = 0; !ret && i < inf->n_watches; i++) {
		if (i && inf->watches[i]->wd <= inf->watches[i - 1]->wd) {
			pr_err("pid %d: inotify watches are not sorted by wd in the image", a->pid);
			return -EINVAL;
		}
		ret = check_same_file(a, inf->watches[i]);
		if (!ret)
			ret = place_watch(a, fd, inf->watches[i], &burnt);
	}
	if (!ret)
		ret = drain(a, fd);
	for (size_t i = 0; !ret && i < inf->n_watches; i++)
		ret = arm_watch(a, fd, inf->watches[i]);
	return ret;
}

static int inotify_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const InotifyFile *inf = (const InotifyFile *)rec;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), ret;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create inotify", a->pid);
	ret = restore_watches(a, fd, inf);
	if (!ret && fcntl(fd, F_SETFL, inf->flags & ~O_ACCMODE) < 0)
		ret = pr_errno(-errno, "pid %d: cannot set inotify flags %#o", a->pid, inf->flags);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

const struct fd_kind fd_kind_inotify = {
	.name = "inotify",
	.desc = &inotify_file__descriptor,
	.match = inotify_match,
	.dump = inotify_dump,
	.open = inotify_open,
};
