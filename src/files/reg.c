/*
 * "reg": a file reopened by its path: regular files, directories, files of /proc and /sys, the
 * character devices that carry no state of their own (/dev/null, /dev/zero, /dev/full,
 * /dev/random, /dev/urandom), and O_PATH descriptors of anything but a socket.
 *
 * A regular file must still be the file the tree had open: restore compares its inode, size
 * and modification time with the dump's and refuses one that changed (see reg_checks() for
 * which descriptions check what). A path that was unlinked while the inode keeps another name
 * (a hard link, st_nlink > 0) is reopened through that name. Unlinked files with no name left
 * are the "ghost" kind, memfds the "memfd" kind.
 *
 * /proc/PID/... is reopened as is: pids are restored, and every process exists when files are
 * restored (not every thread: see check_proc_path()). A seq_file keeps the text it generated
 * when its position was set, so after restore a partly read file goes on with text made while
 * crest still ran in the process (comm "crest"); what is read from 0 again is current.
 *
 * Locks (flock.c) and the O_ASYNC owner (fown.c) come back with the description.
 */
#define LOG_PREFIX "files/reg: "
#include "files/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "files/flock.h"
#include "files/fown.h"
#include "files/reopen.h"
#include "reg.pb-c.h"
#include "util/log.h"
#include "util/util.h"

/* Memory devices (major 1) whose descriptors hold nothing but their flags. */
static bool stateless_chr(dev_t rdev)
{
	if (major(rdev) != 1)
		return false;
	switch (minor(rdev)) {
	case 3:	/* null */
	case 5:	/* zero */
	case 7:	/* full */
	case 8:	/* random */
	case 9:	/* urandom */
		return true;
	}
	return false;
}

static bool reg_match(const struct fd_dump_arg *a)
{
	if (a->link[0] != '/' || link_is_memfd(a->link))
		return false;
	if (S_ISREG(a->st->st_mode) && a->st->st_nlink == 0 && link_is_deleted(a->link))
		return false;	/* no name left: a ghost */
	if (a->flags & O_PATH)	/* a path only: opening it again touches nothing */
		return !S_ISSOCK(a->st->st_mode);
	return S_ISREG(a->st->st_mode) || S_ISDIR(a->st->st_mode) ||
	       (S_ISCHR(a->st->st_mode) && stateless_chr(a->st->st_rdev));
}

/*
 * Filesystems whose files are generated on each read: their size, times and inode numbers
 * say nothing about contents (a /proc/PID file even gets a new inode with the new process).
 */
static bool pseudo_fs(pid_t pid, int fd)
{
	char path[64];
	struct statfs sf;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	if (statfs(path, &sf))
		return false;
	switch ((unsigned long)sf.f_type) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
		return true;
	}
	return false;
}

/*
 * /proc/N/... is reopened by the same path, which names the same process after restore
 * (pids are restored). Descriptions are created before the restored threads exist, so a file
 * of a thread that is not its group's leader (/proc/N/task/T, or /proc/T) cannot be reopened.
 */
static int check_proc_path(const struct fd_dump_arg *a)
{
	const char *p = a->link + strlen("/proc/");
	char *end;
	long n, t;
	int tgid;

	if (strncmp(a->link, "/proc/", 6) || !isdigit((unsigned char)*p))
		return 0;
	n = strtol(p, &end, 10);
	t = !strncmp(end, "/task/", 6) ? strtol(end + 6, NULL, 10) : n;
	tgid = tid_tgid(n);
	if (tgid == n && t == n)
		return 0;
	if (tgid < 0)
		pr_err("pid %d fd %d: %s: process %ld is gone, its files cannot be opened again",
		       a->pid, a->fd, a->link, n);
	else
		pr_err("pid %d fd %d: %s belongs to thread %ld, which does not exist yet when files are restored",
		       a->pid, a->fd, a->link, t != n ? t : n);
	return -EOPNOTSUPP;
}

/*
 * The path was unlinked but the inode has st_nlink other names: look for one in the same
 * directory (where hard links usually are; the kernel keeps no list of an inode's names).
 */
static int find_other_name(const struct fd_dump_arg *a, const char *path, char **ret)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	struct dirent *de;
	DIR *d;

	if (!slash)
		return -ENOMEM;
	*(slash == dir ? slash + 1 : slash) = '\0';
	d = opendir(dir);
	if (!d)
		return pr_errno(-errno, "pid %d fd %d: %s: the file was unlinked, and its directory %s cannot be searched for another name",
				a->pid, a->fd, a->link, dir);
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_ino != a->st->st_ino ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    st.st_dev != a->st->st_dev || st.st_ino != a->st->st_ino)
			continue;
		*ret = xmalloc(strlen(dir) + strlen(de->d_name) + 2);
		if (*ret)
			sprintf(*ret, "%s%s%s", dir, slash == dir ? "" : "/", de->d_name);
		closedir(d);
		return *ret ? 0 : -ENOMEM;
	}
	closedir(d);
	pr_err("pid %d fd %d: %s: the file was unlinked but keeps %lu other name(s), none in %s: crest cannot find a name to reopen it by",
	       a->pid, a->fd, a->link, (unsigned long)a->st->st_nlink, dir);
	return -EOPNOTSUPP;
}

/* What a deleted path can still be: a regular file with another name, nothing else. */
static int dump_deleted(const struct fd_dump_arg *a, RegEntry *re)
{
	if (!S_ISREG(a->st->st_mode)) {
		pr_err("pid %d fd %d: %s: open %s that was deleted: crest cannot recreate it", a->pid,
		       a->fd, a->link, S_ISDIR(a->st->st_mode) ? "directory" : "device node");
		return -EOPNOTSUPP;
	}
	re->path[strlen(re->path) - strlen(DELETED_SUFFIX)] = '\0';
	return find_other_name(a, re->path, &re->link_path);
}

/*
 * Which restore checks a description gets. Every regular file: its path must name the same
 * inode. Its size must be the same, except for O_WRONLY|O_APPEND descriptions (logs, which
 * keep growing: CRIU skips those too). Its mtime only for read-only descriptions: through a
 * writable one the tree itself may have changed the file after a --leave-running dump.
 */
static void reg_checks(const struct fd_dump_arg *a, RegEntry *re)
{
	uint32_t acc = a->flags & O_ACCMODE;

	if (!S_ISREG(a->st->st_mode) || pseudo_fs(a->pid, a->fd))
		return;
	re->has_check_ino = re->check_ino = true;
	re->has_check_size = true;
	re->check_size = !(acc == O_WRONLY && (a->flags & O_APPEND));
	re->has_check_mtime = true;
	re->check_mtime = acc == O_RDONLY && !(a->flags & O_PATH);
}

static RegEntry *reg_entry_new(const struct fd_dump_arg *a)
{
	RegEntry *re = xmalloc(sizeof(*re));

	if (!re)
		return NULL;
	reg_entry__init(re);
	re->path = xstrdup(a->link);
	re->flags = a->flags;
	re->pos = a->pos;
	re->has_mode = re->has_size = re->has_dev = re->has_ino = re->has_rdev = true;
	re->mode = a->st->st_mode;
	re->size = a->st->st_size;
	re->dev = a->st->st_dev;
	re->ino = a->st->st_ino;
	re->rdev = a->st->st_rdev;
	re->has_mtime_ns = true;
	re->mtime_ns = (int64_t)a->st->st_mtim.tv_sec * 1000000000 + a->st->st_mtim.tv_nsec;
	if (!re->path) {
		free(re);
		return NULL;
	}
	return re;
}

static int reg_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	RegEntry *re = reg_entry_new(a);
	int err;

	if (!re)
		return -ENOMEM;
	err = link_is_deleted(a->link) ? dump_deleted(a, re) : check_proc_path(a);
	if (!err)
		reg_checks(a, re);
	if (!err && (S_ISREG(a->st->st_mode) || S_ISDIR(a->st->st_mode)))
		err = flock_dump(a, &re->locks, &re->n_locks);
	if (!err)
		err = fown_dump(a, &re->fown);
	if (err) {
		reg_entry__free_unpacked(re, NULL);
		return err;
	}
	*ret = &re->base;
	return 0;
}

/* Descriptions reopened through another name link it back one at a time, in one process. */
static uint64_t reg_group(const ProtobufCMessage *rec)
{
	const RegEntry *re = (const RegEntry *)rec;

	return re->link_path ? (re->dev << 40 ^ re->ino) | 1ULL << 63 : 0;
}

/*
 * Reopens an unlinked path through the inode's other name: linked back at the old path for
 * a moment, so that the new description's path is "PATH (deleted)" again, as before.
 */
static int open_relinked(const struct fd_open_arg *a, const RegEntry *re)
{
	bool linked = !linkat(AT_FDCWD, re->link_path, AT_FDCWD, re->path, 0);
	int fd = open(linked ? re->path : re->link_path, reopen_flags(re->flags));
	int err = -errno;

	if (linked && unlink(re->path))
		pr_warn("pid %d: cannot unlink %s again: %s", a->pid, re->path, strerror(errno));
	if (fd < 0)
		return pr_errno(err, "pid %d: cannot reopen deleted %s through its other name %s",
				a->pid, re->path, re->link_path);
	if (!linked)
		pr_warn("pid %d: %s is taken: reopened through %s, whose name its descriptor now shows",
			a->pid, re->path, re->link_path);
	return fd;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* The file behind fd must be the one dumped (reg_checks()); -ESTALE after logging if not. */
static int verify_file(const struct fd_open_arg *a, const RegEntry *re, int fd)
{
	const char *path = re->link_path ? re->link_path : re->path;
	struct stat st;

	if (!re->check_ino && !re->check_size && !re->check_mtime)
		return 0;
	if (fstat(fd, &st))
		return pr_errno(-errno, "pid %d: cannot stat %s", a->pid, path);
	if (re->check_ino && st.st_ino != re->ino) {
		pr_err("pid %d: %s is not the file that was dumped (inode %" PRIu64 ", was %" PRIu64 "): it was replaced since",
		       a->pid, path, (uint64_t)st.st_ino, re->ino);
		return -ESTALE;
	}
	if (re->check_size && (uint64_t)st.st_size != re->size) {
		pr_err("pid %d: %s changed since the dump: its size is %" PRIu64 ", was %" PRIu64,
		       a->pid, path, (uint64_t)st.st_size, re->size);
		return -ESTALE;
	}
	if (re->check_mtime && mtime_ns(&st) != re->mtime_ns) {
		pr_err("pid %d: %s changed since the dump: it was modified (mtime %" PRId64 ".%09" PRId64 ", was %" PRId64 ".%09" PRId64 ")",
		       a->pid, path, mtime_ns(&st) / 1000000000, mtime_ns(&st) % 1000000000,
		       re->mtime_ns / 1000000000, re->mtime_ns % 1000000000);
		return -ESTALE;
	}
	return 0;
}

/*
 * After the checks: O_ASYNC and its owner first (it may have to reopen the file), then the
 * position and the description's own locks.
 */
static int reg_setup(const struct fd_open_arg *a, const RegEntry *re, int fd)
{
	int nfd = fown_restore(fd, re->fown, re->flags, a->pid, re->path);

	if (nfd < 0) {
		close(fd);
		return nfd;
	}
	/*
	 * Directory positions are opaque cookies, a seq_file (/proc) seeks by reading up to the
	 * position (and past its end without error); seeking a regular file must work.
	 */
	if (re->pos && lseek(nfd, re->pos, SEEK_SET) < 0 && S_ISREG(re->mode)) {
		int err = pr_errno(-errno, "pid %d: %s: cannot seek to %" PRIu64, a->pid, re->path, re->pos);

		close(nfd);
		return err;
	}
	return nfd;
}

static int reg_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const RegEntry *re = (const RegEntry *)rec;
	int fd, err;

	if (re->link_path)
		fd = open_relinked(a, re);
	else if ((fd = open(re->path, reopen_flags(re->flags))) < 0)
		fd = pr_errno(-errno, "pid %d: cannot reopen %s", a->pid, re->path);
	if (fd < 0)
		return fd;
	err = verify_file(a, re, fd);
	if (err) {
		close(fd);
		return err;
	}
	fd = reg_setup(a, re, fd);
	if (fd < 0)
		return fd;
	err = flock_restore_desc(fd, re->locks, re->n_locks, a->pid, re->path);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* POSIX locks belong to processes: each takes its own once its fd table is installed. */
static int reg_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			    bool owner)
{
	const RegEntry *re = (const RegEntry *)rec;

	return flock_restore_posix(fd, re->locks, re->n_locks, a->pid, re->path);
}

const struct fd_kind fd_kind_reg = {
	.name = "reg",
	.desc = &reg_entry__descriptor,
	.match = reg_match,
	.dump = reg_dump,
	.group = reg_group,
	.open = reg_open,
	.restore_late = reg_restore_late,
	.keeps_fown = true,
};
