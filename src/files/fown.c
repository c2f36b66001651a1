/*
 * O_ASYNC owner and signal. fcntl(2): F_SETOWN_EX names the thread, process or group that gets
 * the signal when I/O is possible, F_SETSIG which signal (0: SIGIO). They live in the open file
 * description (struct file's f_owner), so reading them through our pidfd_getfd copy reads the
 * target's. O_ASYNC must be switched on with F_SETFL after they are set: only setfl calls the
 * file's ->fasync, which puts the description on the list that pipes, FIFOs, sockets and ttys
 * signal; open(2) with O_ASYNC only sets the flag.
 */
#define LOG_PREFIX "files/fown: "
#include "files/fown.h"
#include "files/files.h"
#include "files/reopen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

static int check_owner(const struct fd_dump_arg *a, const struct f_owner_ex *o)
{
	if (o->type != F_OWNER_TID || o->pid <= 0 || tid_tgid(o->pid) == o->pid)
		return 0;
	pr_err("pid %d fd %d: %s: the O_ASYNC owner is thread %d, which does not exist yet when descriptions are restored",
	       a->pid, a->fd, a->link, o->pid);
	return -EOPNOTSUPP;
}

int fown_dump(const struct fd_dump_arg *a, FownState **ret)
{
	struct f_owner_ex o = { 0 };
	FownState *fo;
	int sig, err;

	*ret = NULL;
	if (a->flags & O_PATH)
		return 0;	/* fcntl(2) refuses F_GETOWN_EX on O_PATH: no owner to have */
	if (a->lfd < 0) {
		if (!(a->flags & O_ASYNC))
			return 0;
		pr_err("pid %d fd %d: %s: O_ASYNC is set but the description cannot be reached to read its owner",
		       a->pid, a->fd, a->link);
		return -EBADF;
	}
	sig = fcntl(a->lfd, F_GETSIG);
	if (sig < 0 || fcntl(a->lfd, F_GETOWN_EX, &o))
		return pr_errno(-errno, "pid %d fd %d: %s: cannot read the O_ASYNC owner", a->pid, a->fd, a->link);
	if (!o.pid && !sig)
		return 0;
	err = check_owner(a, &o);
	if (err)
		return err;
	fo = xmalloc(sizeof(*fo));
	if (!fo)
		return -ENOMEM;
	fown_state__init(fo);
	fo->pid_type = o.type;
	fo->pid = pidns_view(o.pid);	/* F_GETOWN_EX answers in crest's namespace */
	if (o.pid && !fo->pid) {
		pr_err("pid %d fd %d: %s: the O_ASYNC owner %d is outside the tree's pid namespace",
		       a->pid, a->fd, a->link, o.pid);
		free(fo);
		return -EOPNOTSUPP;
	}
	fo->has_signum = sig != 0;
	fo->signum = sig;
	*ret = fo;
	return 0;
}

static int set_owner(int fd, const FownState *fo, pid_t pid, const char *what)
{
	struct f_owner_ex o = { .type = fo->pid_type, .pid = fo->pid };

	if (fo->pid && fcntl(fd, F_SETOWN_EX, &o)) {
		int err = -errno;

		if (err == -ESRCH)
			pr_err("pid %d: %s: the O_ASYNC owner %d does not exist (was it outside the tree?)",
			       pid, what, fo->pid);
		else
			pr_err("pid %d: %s: cannot set the O_ASYNC owner %d: %s", pid, what, fo->pid,
			       strerror(-err));
		return err;
	}
	if (fo->has_signum && fo->signum && fcntl(fd, F_SETSIG, fo->signum))
		return pr_errno(-errno, "pid %d: %s: cannot set the O_ASYNC signal %u", pid, what, fo->signum);
	return 0;
}

/*
 * O_ASYNC on a file without ->fasync (regular files, most of /proc): setfl leaves the flag
 * to ->fasync, so F_SETFL cannot set it, while open(2) stores it as given. Such a description
 * is opened again, with O_ASYNC, through /proc/self/fd: the same file, nothing else to lose
 * this early (no position, no lock yet).
 */
static int reopen_async(int fd, const FownState *fo, uint32_t flags, pid_t pid, const char *what)
{
	int nfd = reopen_fd(fd, reopen_flags(flags) | O_ASYNC), err;

	if (nfd < 0)
		return pr_errno(-errno, "pid %d: %s: cannot reopen it with O_ASYNC", pid, what);
	err = fo ? set_owner(nfd, fo, pid, what) : 0;
	if (err) {
		close(nfd);
		return err;
	}
	close(fd);
	return nfd;
}

int fown_restore(int fd, const FownState *fo, uint32_t flags, pid_t pid, const char *what)
{
	int fl, err;

	if (fo) {
		err = set_owner(fd, fo, pid, what);
		if (err)
			return err;
	}
	if (!(flags & O_ASYNC))
		return fd;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC))
		return pr_errno(-errno, "pid %d: %s: cannot switch O_ASYNC on", pid, what);
	if (fcntl(fd, F_GETFL) & O_ASYNC)
		return fd;
	return reopen_async(fd, fo, flags, pid, what);
}
