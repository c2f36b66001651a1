/*
 * File locks: read from /proc text at dump, taken again at restore.
 *
 * Who owns a lock decides where it is seen and who must take it back:
 *  - flock(2) and OFD (F_OFD_SETLK) locks belong to the open file description. fdinfo lists
 *    them under every fd of that description ("lock:" lines, since 4.x for flock/POSIX, OFD
 *    since 3.15), so the description's record carries them, and they are taken again right
 *    where the description is created, before any process takes a copy of it.
 *  - POSIX record locks (F_SETLK) belong to a process (its files_struct), and fdinfo shows one
 *    only in the owner's table under the fd it was taken through: the process crest first sees
 *    the description in may not be the owner. /proc/locks lists them all with the owner's
 *    tgid, so every POSIX lock on the inode that this description could have taken (READ needs
 *    read access, WRITE write access) is saved with it, and each process takes back its own
 *    in restore_late, after its fd table is installed: closing any fd of the inode drops a
 *    process's POSIX locks, and crest closes its service fds when installing the table.
 * Taking one POSIX lock twice (from two descriptions) replaces it with itself: harmless.
 */
#define LOG_PREFIX "files/flock: "
#include "cli/opts.h"
#include "files/flock.h"
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sysmacros.h>

#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

int flock_parse_line(const char *line, struct flock_line *fl)
{
	char mode[16], type[16], end[24];
	const char *p = line;
	char *q;

	memset(fl, 0, sizeof(*fl));
	if (!strncmp(p, "lock:", 5))
		p += 5;
	strtol(p, &q, 10);
	if (q == p || *q != ':')
		return -EINVAL;
	p = q + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!strncmp(p, "->", 2)) {
		fl->blocked = true;
		p += 2;
	}
	/* class, ADVISORY (or a lease's state), type, pid, maj:min:ino, start, end */
	if (sscanf(p, "%7s %15s %15s %d %x:%x:%" SCNu64 " %" SCNu64 " %23s", fl->cls, mode, type,
		   &fl->pid, &fl->maj, &fl->min, &fl->ino, &fl->start, end) != 9)
		return -EINVAL;
	fl->write = !strcmp(type, "WRITE");
	if (!strcmp(end, "EOF")) {
		fl->to_eof = true;
		return 0;
	}
	fl->end = strtoull(end, &q, 10);
	return *q ? -EINVAL : 0;
}

/* The locks collected for one description. */
struct lockset {
	FileLock **v;
	size_t nr, cap;
};

static void lockset_free(struct lockset *ls)
{
	for (size_t i = 0; i < ls->nr; i++)
		file_lock__free_unpacked(ls->v[i], NULL);
	free(ls->v);
	memset(ls, 0, sizeof(*ls));
}

static int lockset_add(struct lockset *ls, const struct flock_line *fl, FileLockKind kind)
{
	FileLock *lk;

	if (xgrow((void **)&ls->v, &ls->cap, ls->nr + 1, sizeof(*ls->v)))
		return -ENOMEM;
	lk = xmalloc(sizeof(*lk));
	if (!lk)
		return -ENOMEM;
	file_lock__init(lk);
	lk->kind = kind;
	lk->write = fl->write;
	if (kind == FILE_LOCK_KIND__FILE_LOCK_POSIX) {
		lk->has_pid = true;
		lk->pid = pidns_view(fl->pid);	/* /proc/locks: crest's view */
	}
	if (kind != FILE_LOCK_KIND__FILE_LOCK_FLOCK) {
		lk->has_start = true;
		lk->start = fl->start;
		lk->has_end = !fl->to_eof;
		lk->end = fl->end;
	}
	ls->v[ls->nr++] = lk;
	return 0;
}

/* POSIX and OFD locks need the access they lock for (fcntl(2): EBADF otherwise). */
static bool access_allows(uint32_t flags, bool write)
{
	if (flags & O_PATH)
		return false;
	return write ? (flags & O_ACCMODE) != O_RDONLY : (flags & O_ACCMODE) != O_WRONLY;
}

/* One fdinfo "lock:" line of the description. */
static int desc_lock(const struct fd_dump_arg *a, const char *line, struct lockset *ls)
{
	struct flock_line fl;

	if (flock_parse_line(line, &fl)) {
		pr_err("pid %d fd %d: %s: unexpected lock line in fdinfo: %s", a->pid, a->fd,
		       a->link, line);
		return -EINVAL;
	}
	if (!strcmp(fl.cls, "FLOCK"))
		return lockset_add(ls, &fl, FILE_LOCK_KIND__FILE_LOCK_FLOCK);
	if (!strcmp(fl.cls, "OFDLCK"))
		return lockset_add(ls, &fl, FILE_LOCK_KIND__FILE_LOCK_OFD);
	if (!strcmp(fl.cls, "LEASE") || !strcmp(fl.cls, "DELEG")) {
		pr_err("pid %d fd %d: %s: holds a file lease (F_SETLEASE), which crest cannot checkpoint",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	return 0;	/* POSIX: from /proc/locks; ACCESS: a transient check, not a lock */
}

/* Calls fn on each line of text starting with prefix (lines are copied, so text stays). */
static int for_each_line(const char *text, const char *prefix,
			 int (*fn)(const struct fd_dump_arg *, const char *, struct lockset *),
			 const struct fd_dump_arg *a, struct lockset *ls)
{
	size_t plen = strlen(prefix);
	int ret = 0;

	for (const char *p = text; !ret && p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[512];

		if (len < sizeof(line) && !strncmp(p, prefix, plen)) {
			memcpy(line, p, len);
			line[len] = '\0';
			ret = fn(a, line, ls);
		}
		p = nl ? nl + 1 : NULL;
	}
	return ret;
}

static bool same_lock(const struct flock_line *x, const struct flock_line *y)
{
	return !strcmp(x->cls, y->cls) && x->pid == y->pid && x->write == y->write &&
	       x->start == y->start && x->to_eof == y->to_eof && (x->to_eof || x->end == y->end);
}

/* Whether fdinfo lists lock fl under this fd, i.e. it was taken through this description. */
static bool fdinfo_shows(const char *fdinfo, const struct flock_line *fl)
{
	for (const char *p = strstr(fdinfo, "lock:"); p; p = strstr(p + 1, "\nlock:")) {
		struct flock_line other;
		char line[512];
		size_t len;

		p += *p == '\n';
		len = strcspn(p, "\n");
		if (len >= sizeof(line))
			continue;
		memcpy(line, p, len);
		line[len] = '\0';
		if (!flock_parse_line(line, &other) && same_lock(fl, &other))
			return true;
	}
	return false;
}

/*
 * One /proc/locks line: a POSIX lock on our inode that this description could have taken.
 * A lock of the dumped process itself that its fdinfo does not list under this fd was taken
 * through another of its descriptions, which carries it: restore then takes it through that
 * one again (the description a POSIX lock was taken through is what fdinfo shows it under).
 */
static int posix_lock(const struct fd_dump_arg *a, const char *line, struct lockset *ls)
{
	struct flock_line fl;

	if (flock_parse_line(line, &fl) || fl.blocked || strcmp(fl.cls, "POSIX"))
		return 0;
	if (fl.maj != major(a->st->st_dev) || fl.min != minor(a->st->st_dev) ||
	    fl.ino != (uint64_t)a->st->st_ino || !access_allows(a->flags, fl.write))
		return 0;
	if (fl.pid == a->pid && !fdinfo_shows(a->fdinfo, &fl))
		return 0;
	pr_debug("pid %d fd %d: %s: POSIX lock of pid %d: %s", a->pid, a->fd, a->link, fl.pid, line);
	return lockset_add(ls, &fl, FILE_LOCK_KIND__FILE_LOCK_POSIX);
}

int flock_dump(const struct fd_dump_arg *a, FileLock ***ret, size_t *ret_nr)
{
	struct lockset ls = { 0 };
	char *all;
	int err;

	err = for_each_line(a->fdinfo, "lock:", desc_lock, a, &ls);
	if (err) {
		lockset_free(&ls);
		return err;
	}
	all = read_file_at(AT_FDCWD, "/proc/locks", NULL);
	if (!all) {
		lockset_free(&ls);
		return pr_errno(-errno, "pid %d fd %d: cannot read /proc/locks", a->pid, a->fd);
	}
	err = for_each_line(all, "", posix_lock, a, &ls);
	free(all);
	/* As CRIU: locks are saved only when asked, since restoring them can block or fail. */
	if (!err && ls.nr && !a->opts->file_locks)
		err = pr_errno(-EOPNOTSUPP, "pid %d fd %d: %s is locked (%zu lock(s)): dump with --file-locks to save file locks",
			       a->pid, a->fd, a->link, ls.nr);
	if (err) {
		lockset_free(&ls);
		return err;
	}
	*ret = ls.v;
	*ret_nr = ls.nr;
	return 0;
}

static void lock_range(const FileLock *lk, struct flock *f)
{
	memset(f, 0, sizeof(*f));
	f->l_type = lk->write ? F_WRLCK : F_RDLCK;
	f->l_whence = SEEK_SET;
	f->l_start = lk->start;
	f->l_len = lk->has_end ? (off_t)(lk->end - lk->start + 1) : 0;	/* 0: to EOF */
}

static int lock_failed(const FileLock *lk, pid_t pid, const char *what)
{
	static const char *const names[] = { "?", "flock", "POSIX", "OFD" };
	int err = -errno;
	char range[64] = "";

	if (lk->has_start && lk->has_end)
		snprintf(range, sizeof(range), " on bytes %" PRIu64 "-%" PRIu64, lk->start, lk->end);
	else if (lk->has_start)
		snprintf(range, sizeof(range), " from byte %" PRIu64 " to EOF", lk->start);
	if (err == -EAGAIN || err == -EACCES)
		pr_err("pid %d: %s: cannot take back its %s %s lock%s: another process holds a conflicting lock",
		       pid, what, names[lk->kind < 4 ? lk->kind : 0], lk->write ? "write" : "read", range);
	else
		pr_err("pid %d: %s: cannot take back its %s %s lock%s: %s", pid, what,
		       names[lk->kind < 4 ? lk->kind : 0], lk->write ? "write" : "read", range,
		       strerror(-err));
	return err;
}

int flock_restore_desc(int fd, FileLock *const *locks, size_t nr, pid_t pid, const char *what)
{
	for (size_t i = 0; i < nr; i++) {
		const FileLock *lk = locks[i];
		struct flock f;
		int r = 0;

		if (lk->kind == FILE_LOCK_KIND__FILE_LOCK_FLOCK) {
			r = flock(fd, (lk->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
		} else if (lk->kind == FILE_LOCK_KIND__FILE_LOCK_OFD) {
			lock_range(lk, &f);
			r = fcntl(fd, F_OFD_SETLK, &f);
		}
		if (r)
			return lock_failed(lk, pid, what);
	}
	return 0;
}

int flock_restore_posix(int fd, FileLock *const *locks, size_t nr, pid_t pid, const char *what)
{
	for (size_t i = 0; i < nr; i++) {
		const FileLock *lk = locks[i];
		struct flock f;

		if (lk->kind != FILE_LOCK_KIND__FILE_LOCK_POSIX || !lk->has_pid || lk->pid != pid)
			continue;
		lock_range(lk, &f);
		if (fcntl(fd, F_SETLK, &f))
			return lock_failed(lk, pid, what);
	}
	return 0;
}
