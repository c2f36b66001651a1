/*
 * Restore of pty pairs. crest's restore controller makes every pair of the image before the
 * tree exists (pty_restore_prepare()), in the order of their indexes, at the index each had: /dev/pts/N keeps its name, which
 * programs have stored (ttyname, utmp, $SSH_TTY). Each slave description is opened from its
 * master with TIOCGPTPEER (Linux 4.13), which needs no path and finds the right devpts.
 *
 * Order within a pair: the master at its index; the slave's settings (TCSETS2 and TIOCSWINSZ
 * through the master act on the slave); packet mode; unlock; each slave description; and only
 * when the last is open, the slave's exclusive mode and the lock, either of which would keep
 * further opens out. The owner of every "tty" entry opens their descriptions from the made
 * pairs. The controlling terminal is taken by the session's leader before it forks
 * (pty_restore_session()), so that its members inherit it; the foreground group comes last,
 * in restore_late, when every process group of the session exists.
 */
#define LOG_PREFIX "files/tty: "
#include "files/files.h"
#include "files/fown.h"
#include "files/pty.h"

#include <asm/termbits.h>	/* struct termios2 and TCSETS2, with the speeds */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

/*
 * A pair that was just closed frees its index only once the kernel's worker has released the
 * tty (release_one_tty()), a moment after the last close: a restore right after the dump
 * killed the tree may find its index still taken, so it tries again for up to 2 s.
 */
#define INDEX_TRIES 200
#define INDEX_WAIT_US 10000

/* A pty pair of the image, as this process knows it. */
struct pair {
	uint32_t index;
	const TtyEnd *master;	/* the master's record */
	size_t nr_slaves;	/* slave records of the pair */
	size_t slaves_opened;	/* of those, opened so far */
	int fd;			/* the master we made, else -1 */
};

/* In the owner of the terminals: the "tty" records of files.img, loaded at its first open. */
static struct {
	bool loaded;
	bool made;		/* every pair made (owner) */
	TtyEnd **recs;
	size_t nr_recs, cap_recs;
	struct pair *pairs;
	size_t nr_pairs, cap_pairs;
} rst;

static struct pair *find_pair(uint32_t index)
{
	for (size_t i = 0; i < rst.nr_pairs; i++)
		if (rst.pairs[i].index == index)
			return &rst.pairs[i];
	return NULL;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

static int add_record(FileEntry *fe)
{
	TtyEnd *te = tty_end__unpack(NULL, fe->payload.len, fe->payload.data);

	if (!te) {
		pr_err("files.img: entry %u (tty): undecodable record", fe->id);
		return -EINVAL;
	}
	if (xgrow((void **)&rst.recs, &rst.cap_recs, rst.nr_recs + 1, sizeof(*rst.recs))) {
		tty_end__free_unpacked(te, NULL);
		return -ENOMEM;
	}
	rst.recs[rst.nr_recs++] = te;
	if (!te->has_role || te->role != TTY_ROLE__PTY_MASTER)
		return 0;
	if (!te->has_index || !te->pty || !te->pty->termios || !te->pty->winsize) {
		pr_err("files.img: entry %u: pty master %s without its index or state", fe->id, te->path);
		return -EINVAL;
	}
	if (find_pair(te->index)) {
		pr_err("files.img: entry %u: a second master for /dev/pts/%u", fe->id, te->index);
		return -EINVAL;
	}
	if (xgrow((void **)&rst.pairs, &rst.cap_pairs, rst.nr_pairs + 1, sizeof(*rst.pairs)))
		return -ENOMEM;
	rst.pairs[rst.nr_pairs++] = (struct pair){ .index = te->index, .master = te, .fd = -1 };
	return 0;
}

/* Reads every "tty" record of files.img: a slave needs its master's record. */
static int load(struct img_dir *dir)
{
	struct img *img;
	int ret = 0;

	if (rst.loaded)
		return 0;
	img = img_open(dir, IMG_MAGIC_FILES, "files.img");
	if (!img)
		return pr_errno(-errno, "cannot read files.img again for the terminals");
	while (!ret) {
		FileEntry *fe;

		ret = img_read(img, file_entry, &fe);
		if (ret || !fe)
			break;
		if (!strcmp(fe->kind, "tty"))
			ret = add_record(fe);
		file_entry__free_unpacked(fe, NULL);
	}
	img_close(img);
	qsort(rst.pairs, rst.nr_pairs, sizeof(*rst.pairs), cmp_pair);
	for (size_t i = 0; !ret && i < rst.nr_recs; i++) {
		struct pair *p = find_pair(rst.recs[i]->index);

		if (p && rst.recs[i]->has_role && rst.recs[i]->role == TTY_ROLE__PTY_SLAVE &&
		    rst.recs[i]->slave && rst.recs[i]->slave->inside)
			p->nr_slaves++;
	}
	rst.loaded = !ret;
	return ret;
}

/*
 * One try at getting pair index: the kernel gives a new pair the lowest free index of the
 * devpts instance and has no way to ask for another, so we open ptmx, holding each lower index
 * we get, until we get ours (at most index + 1 opens), then let the lower ones go. -EAGAIN:
 * an index above ours came, so ours is taken.
 */
static int try_index(const char *path, uint32_t index, int *ret)
{
	int *spare = NULL, err = -EAGAIN;
	size_t nr = 0, cap = 0;

	for (;;) {
		int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC), got = -1;

		if (fd < 0 || ioctl(fd, TIOCGPTN, &got) < 0) {
			err = -errno;
			safe_close(fd);
			break;
		}
		if ((uint32_t)got == index) {
			*ret = fd;
			err = 0;
			break;
		}
		if ((uint32_t)got < index && !xgrow((void **)&spare, &cap, nr + 1, sizeof(*spare))) {
			spare[nr++] = fd;
			continue;
		}
		err = (uint32_t)got > index ? -EAGAIN : -ENOMEM;
		close(fd);
		break;
	}
	for (size_t i = 0; i < nr; i++)
		close(spare[i]);
	free(spare);
	return err;
}

static int open_at_index(const struct fd_open_arg *a, const char *path, uint32_t index, int *ret)
{
	int err = -EAGAIN;

	for (int i = 0; i < INDEX_TRIES && err == -EAGAIN; i++) {
		if (i)
			usleep(INDEX_WAIT_US);
		err = try_index(path, index, ret);
	}
	if (err == -EAGAIN)
		pr_err("pid %d: pty index %u is in use: cannot make /dev/pts/%u again", a->pid, index, index);
	else if (err)
		pr_err("pid %d: cannot open %s to make /dev/pts/%u again: %s", a->pid, path, index, strerror(-err));
	return err;
}

/* The slave's settings and window size, set through the master. */
static int set_settings(const struct fd_open_arg *a, int fd, const struct pair *p)
{
	const PtyTermios *pt = p->master->pty->termios;
	const PtyWinsize *pw = p->master->pty->winsize;
	struct winsize ws = { pw->row, pw->col, pw->xpixel, pw->ypixel };
	struct termios2 t;

	/* start from the kernel's own, so that c_cc entries the image lacks keep their defaults */
	if (ioctl(fd, TCGETS2, &t) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot read the new terminal's settings", a->pid, p->index);
	t.c_iflag = pt->iflag;
	t.c_oflag = pt->oflag;
	t.c_cflag = pt->cflag;
	t.c_lflag = pt->lflag;
	t.c_line = pt->line;
	t.c_ispeed = pt->ispeed;
	t.c_ospeed = pt->ospeed;
	memcpy(t.c_cc, pt->cc.data, MIN(pt->cc.len, sizeof(t.c_cc)));
	if (ioctl(fd, TCSETS2, &t) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot set the terminal's settings", a->pid, p->index);
	if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot set the window size", a->pid, p->index);
	return 0;
}

/* Packet mode and master exclusive mode, then unlock the slave for its descriptions. */
static int set_modes(const struct fd_open_arg *a, int fd, const struct pair *p)
{
	const PtyState *ps = p->master->pty;
	int pkt = ps->packet, unlock = 0;

	if (ioctl(fd, TIOCPKT, &pkt) < 0 || (ps->master_excl && ioctl(fd, TIOCEXCL) < 0) ||
	    ioctl(fd, TIOCSPTLCK, &unlock) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot set the pair's modes", a->pid, p->index);
	return 0;
}

/* When the last slave description is open (slave may be -1 if there is none): excl, lock. */
static int finish_pair(const struct fd_open_arg *a, struct pair *p, int slave, bool excl)
{
	int lock = 1;

	if (excl && ioctl(slave, TIOCEXCL) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot set exclusive mode", a->pid, p->index);
	if (p->master->pty->locked && ioctl(p->fd, TIOCSPTLCK, &lock) < 0)
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot lock the slave", a->pid, p->index);
	return 0;
}

static int make_pair(const struct fd_open_arg *a, struct pair *p)
{
	int fd = -1, err = open_at_index(a, p->master->path, p->index, &fd);

	if (err)
		return err;
	p->fd = fd;
	err = set_settings(a, fd, p);
	if (!err)
		err = set_modes(a, fd, p);
	/* a slave opened and closed again: the master reads EIO until it is opened anew */
	if (!err && p->master->pty->slave_closed) {
		int slave = ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);

		if (slave < 0)
			return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot open the slave", a->pid, p->index);
		close(slave);
	}
	if (!err && !p->nr_slaves)
		err = finish_pair(a, p, -1, false);
	if (!err)
		pr_info("pid %d: made pty pair /dev/pts/%u", a->pid, p->index);
	return err;
}

static int make_all(const struct fd_open_arg *a)
{
	int err = 0;

	for (size_t i = 0; !err && i < rst.nr_pairs; i++)
		err = make_pair(a, &rst.pairs[i]);
	rst.made = !err;
	return err;
}

/*
 * In crest's restore controller, before the first process is created: every pair is made
 * there, so that every process of the tree inherits its master (p->fd) and a session leader
 * can take its terminal back before it forks its children (pty_restore_session()). The owner
 * of the entries then finds them made, and opens the descriptions from p->fd as before.
 */
int pty_restore_prepare(struct img_dir *dir)
{
	struct fd_open_arg a = { .pid = getpid(), .dir = dir };
	int ret = load(dir);

	return ret ? ret : make_all(&a);
}

/* The controller, once the root exists: the tree holds the masters now. */
void pty_restore_release(void)
{
	for (size_t i = 0; i < rst.nr_pairs; i++)
		safe_close(rst.pairs[i].fd);
}

static bool no_ctty(const PtyState *ps, pid_t pid)
{
	for (size_t i = 0; i < ps->n_no_ctty; i++)
		if (ps->no_ctty[i] == pid)
			return true;
	return false;
}

/* TIOCNOTTY acts on the caller's terminal only through that terminal: a slave, not its master. */
static int drop_ctty(pid_t pid, const struct pair *p)
{
	int slave = ioctl(p->fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC), err = 0;

	if (slave < 0)
		return pr_errno(-errno, "pid %d: cannot open /dev/pts/%u to drop it as controlling terminal", pid, p->index);
	if (ioctl(slave, TIOCNOTTY) < 0 && errno != ENOTTY)
		err = pr_errno(-errno, "pid %d: cannot drop /dev/pts/%u as controlling terminal", pid, p->index);
	close(slave);
	return err;
}

/*
 * A process whose session and group are set up, before it forks its children. The leader of
 * a session whose controlling terminal is a pair of the image takes it now (TIOCSCTTY through
 * the inherited master acts on the slave), so that the members forked from it inherit it, as
 * they had. A member that had none drops it (TIOCNOTTY), before its own children. The
 * foreground group is set later, in pty_restore_late(), when every group exists.
 */
int pty_restore_session(pid_t pid)
{
	for (size_t i = 0; i < rst.nr_pairs; i++) {
		const struct pair *p = &rst.pairs[i];
		const PtyState *ps = p->master->pty;
		int err = 0;

		if (!ps->sid || p->fd < 0)
			continue;
		if ((pid_t)ps->sid == pid && ioctl(p->fd, TIOCSCTTY, 0) < 0)
			err = pr_errno(-errno, "pid %d: cannot make /dev/pts/%u its controlling terminal again", pid, p->index);
		else if ((pid_t)ps->sid != pid && no_ctty(ps, pid))
			err = drop_ctty(pid, p);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Status flags and O_ASYNC. A tty's ->fasync makes the tty's foreground group, or the caller,
 * the owner when O_ASYNC goes on (__tty_fasync()), so the saved owner is set after it.
 */
static int set_flags(const struct fd_open_arg *a, int fd, const TtyEnd *te)
{
	if (fcntl(fd, F_SETFL, te->flags & ~O_ASYNC) < 0 ||
	    ((te->flags & O_ASYNC) && fcntl(fd, F_SETFL, te->flags) < 0))
		return pr_errno(-errno, "pid %d: %s: cannot set status flags %#o", a->pid, te->path, te->flags);
	if (!te->fown)
		return fd;
	return fown_restore(fd, te->fown, te->flags & ~O_ASYNC, a->pid, te->path);
}

/* The owner and mode programs give /dev/pts/N (grantpt, chmod), on its inode. */
static int set_owner_mode(const struct fd_open_arg *a, int fd, const struct pair *p,
			  const PtySlave *ps)
{
	struct stat st;

	if (fstat(fd, &st) ||
	    (ps->has_uid && (st.st_uid != ps->uid || st.st_gid != ps->gid) &&
	     fchown(fd, ps->uid, ps->gid)) ||
	    (ps->has_mode && (st.st_mode & 07777) != (ps->mode & 07777) &&
	     fchmod(fd, ps->mode & 07777)))
		return pr_errno(-errno, "pid %d: /dev/pts/%u: cannot give back its owner and mode", a->pid, p->index);
	return 0;
}

/* A slave description, opened from the master; the last one finishes the pair. */
static int open_slave(const struct fd_open_arg *a, struct pair *p, const TtyEnd *te)
{
	const PtySlave *ps = te->slave;
	int fd = ioctl(p->fd, TIOCGPTPEER, (te->flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open /dev/pts/%u", a->pid, p->index);
	if (ps)
		err = set_owner_mode(a, fd, p, ps);
	if (!err && ++p->slaves_opened == p->nr_slaves)
		err = finish_pair(a, p, fd, ps && ps->excl);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int pty_restore_open(const struct fd_open_arg *a, const TtyEnd *te)
{
	struct pair *p;
	int fd, ret;

	ret = load(a->dir);
	if (!ret && !rst.made)
		ret = make_all(a);
	if (ret)
		return ret;
	p = find_pair(te->index);
	if (!p) {
		pr_err("pid %d: %s: no pty pair %u in the image", a->pid, te->path, te->index);
		return -EINVAL;
	}
	if (te->role != TTY_ROLE__PTY_MASTER)
		fd = open_slave(a, p, te);
	else if ((fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		fd = pr_errno(-errno, "pid %d: cannot duplicate the master of /dev/pts/%u", a->pid, p->index);
	if (fd < 0)
		return fd;
	ret = set_flags(a, fd, te);
	if (ret < 0)
		close(fd);
	return ret;
}

/*
 * In the session's leader: TIOCSCTTY makes the slave its controlling terminal again (on a
 * master it acts on the slave too) and the leader's group the foreground; TIOCSPGRP then gives
 * the foreground back to the group that had it. Both need setsid() done and every group of
 * the session in place, which the restore order gives (setup_session(), then RS_CREATE). The
 * leader may hold several descriptions of the pair: both ioctls can be repeated harmlessly.
 * This runs after the fd table is installed, when the image can no longer be read: what it
 * needs is in the record itself.
 */
int pty_restore_late(const struct fd_open_arg *a, const TtyEnd *te, int fd)
{
	pid_t sid = 0, pgrp = 0;

	if (te->pty) {
		sid = te->pty->sid;
		pgrp = te->pty->pgrp;
	} else if (te->slave) {
		sid = te->slave->sid;
		pgrp = te->slave->pgrp;
	}
	if (!sid || sid != a->pid)
		return 0;
	if (ioctl(fd, TIOCSCTTY, 0) < 0)
		return pr_errno(-errno, "pid %d: cannot make /dev/pts/%u its controlling terminal again", a->pid, te->index);
	if (pgrp && ioctl(fd, TIOCSPGRP, &pgrp) < 0)
		return pr_errno(-errno, "pid %d: cannot give the foreground of /dev/pts/%u back to process group %d",
				a->pid, te->index, pgrp);
	return 0;
}
