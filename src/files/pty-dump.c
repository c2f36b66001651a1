/*
 * Dump of pty pairs: the pair's state is read through our copy of the master (pidfd_getfd),
 * with ioctls that only read. On a master, the terminal ioctls act on the slave: TCGETS2,
 * TIOCGWINSZ, TIOCGPGRP and TIOCGSID give the slave's settings, window size, foreground group
 * and session (tty_mode_ioctl() and tty_ioctl() use the pair's slave as "real_tty"), without
 * the caller having it as controlling terminal, which we cannot have.
 *
 * What a terminal holds that we cannot read without taking it: the bytes queued for a reader.
 * A tty has no MSG_PEEK and no tee; a read consumes. FIONREAD gives their number, so a pair
 * with unread bytes makes the dump fail, naming them. Two blind spots remain: a line being typed
 * in canonical mode (no newline yet) is not counted by FIONREAD (n_tty counts complete lines
 * only), and bytes still in the tty's flip buffer, not yet handed to the line discipline by
 * the kernel's worker, are not counted either.
 */
#define LOG_PREFIX "files/tty: "
#include "files/files.h"
#include "files/pty.h"

#include <asm/termbits.h>	/* struct termios2 and TCGETS2: the kernel's, with the speeds */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>

#include "cli/opts.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

static int get_int(const struct fd_dump_arg *a, unsigned long req, const char *what, int *ret)
{
	*ret = 0;
	if (ioctl(a->lfd, req, ret) < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot read the %s", a->pid, a->fd, a->link, what);
	return 0;
}

/* Termios and window size of the pair (the slave's, read through the master). */
static int dump_settings(const struct fd_dump_arg *a, PtyState *ps)
{
	struct termios2 t;
	struct winsize ws;

	if (ioctl(a->lfd, TCGETS2, &t) < 0 || ioctl(a->lfd, TIOCGWINSZ, &ws) < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot read the terminal settings", a->pid, a->fd, a->link);
	ps->termios = xmalloc(sizeof(*ps->termios));
	ps->winsize = xmalloc(sizeof(*ps->winsize));
	if (!ps->termios || !ps->winsize)
		return -ENOMEM;
	pty_termios__init(ps->termios);
	ps->termios->iflag = t.c_iflag;
	ps->termios->oflag = t.c_oflag;
	ps->termios->cflag = t.c_cflag;
	ps->termios->lflag = t.c_lflag;
	ps->termios->line = t.c_line;
	ps->termios->ispeed = t.c_ispeed;
	ps->termios->ospeed = t.c_ospeed;
	ps->termios->cc.len = sizeof(t.c_cc);
	ps->termios->cc.data = xmalloc(sizeof(t.c_cc));
	if (!ps->termios->cc.data)
		return -ENOMEM;
	memcpy(ps->termios->cc.data, t.c_cc, sizeof(t.c_cc));
	pty_winsize__init(ps->winsize);
	ps->winsize->row = ws.ws_row;
	ps->winsize->col = ws.ws_col;
	ps->winsize->xpixel = ws.ws_xpixel;
	ps->winsize->ypixel = ws.ws_ypixel;
	return 0;
}

/* Session and foreground group; TIOCGSID says ENOTTY when no session has the slave. */
static int dump_session(const struct fd_dump_arg *a, PtyState *ps)
{
	int sid = 0, pgrp = 0, err;

	if (ioctl(a->lfd, TIOCGSID, &sid) < 0) {
		if (errno != ENOTTY)
			return pr_errno(-errno, "pid %d fd %d: %s: cannot read the terminal's session", a->pid, a->fd, a->link);
		sid = 0;
	}
	err = get_int(a, TIOCGPGRP, "foreground process group", &pgrp);
	if (err)
		return err;
	ps->has_sid = ps->has_pgrp = true;
	ps->sid = sid;
	ps->pgrp = pgrp;
	return 0;
}

/* Packet mode, lock, exclusive mode, and whether the slave was closed (master POLLHUP). */
static int dump_modes(const struct fd_dump_arg *a, PtyState *ps)
{
	struct pollfd p = { .fd = a->lfd, .events = POLLIN };
	int pkt, lock, excl, err;

	err = get_int(a, TIOCGPKT, "packet mode", &pkt);
	if (!err)
		err = get_int(a, TIOCGPTLCK, "lock state", &lock);
	if (!err)
		err = get_int(a, TIOCGEXCL, "exclusive mode", &excl);
	if (err)
		return err;
	/* n_tty_poll() reports EPOLLHUP on a master once its slave's last descriptor closed */
	if (poll(&p, 1, 0) < 0)
		return pr_errno(-errno, "pid %d fd %d: %s: cannot poll the master", a->pid, a->fd, a->link);
	ps->has_packet = ps->has_locked = ps->has_master_excl = ps->has_slave_closed = true;
	ps->packet = pkt;
	ps->locked = lock;
	ps->master_excl = excl;
	ps->slave_closed = p.revents & POLLHUP;
	return 0;
}

/* Refuses a pair whose master has bytes queued (what the slave's writers wrote). */
static int check_master_queue(const struct fd_dump_arg *a, uint32_t index)
{
	int unread, ldisc, err;

	err = get_int(a, FIONREAD, "number of unread bytes", &unread);
	if (!err)
		err = get_int(a, TIOCGETD, "line discipline", &ldisc);
	if (err)
		return err;
	if (ldisc != N_TTY) {
		pr_err("pid %d fd %d: pty master of /dev/pts/%u uses line discipline %d: only N_TTY can be restored",
		       a->pid, a->fd, index, ldisc);
		return -EOPNOTSUPP;
	}
	if (!unread)
		return 0;
	pr_err("pid %d fd %d: pty master of /dev/pts/%u has %d unread bytes of output: a terminal's queue cannot be saved without consuming it",
	       a->pid, a->fd, index, unread);
	return -EOPNOTSUPP;
}

int pty_dump_master(const struct fd_dump_arg *a, TtyEnd *te)
{
	PtyState *ps;
	int index, err;

	if (a->lfd < 0) {
		pr_err("pid %d fd %d: %s: cannot reach the pty master", a->pid, a->fd, a->link);
		return -EBADF;
	}
	err = get_int(a, TIOCGPTN, "pty index", &index);
	if (err)
		return err;
	te->has_index = true;
	te->index = index;
	err = check_master_queue(a, index);
	if (err)
		return err;
	ps = te->pty = xmalloc(sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	pty_state__init(ps);
	err = dump_settings(a, ps);
	if (!err)
		err = dump_session(a, ps);
	if (!err)
		err = dump_modes(a, ps);
	if (!err && ps->sid)
		err = pty_tree_check_session(a, index, ps->sid);
	if (!err && ps->sid)
		err = pty_tree_no_ctty(index, ps->sid, &ps->no_ctty, &ps->n_no_ctty);
	if (!err)
		err = pty_tree_check_outside(a, index);
	/* TIOCGSID and TIOCGPGRP answer in crest's pid namespace; the image keeps the tree's. */
	ps->sid = pidns_view(ps->sid);
	ps->pgrp = pidns_view(ps->pgrp);
	return err;
}

/* A slave of a pair inside the tree: its line discipline and what is queued for its readers. */
static int check_slave_queue(const struct fd_dump_arg *a)
{
	int unread, ldisc, err;

	err = get_int(a, FIONREAD, "number of unread bytes", &unread);
	if (!err)
		err = get_int(a, TIOCGETD, "line discipline", &ldisc);
	if (err)
		return err;
	if (ldisc != N_TTY) {
		pr_err("pid %d fd %d: %s uses line discipline %d: only N_TTY can be restored",
		       a->pid, a->fd, a->link, ldisc);
		return -EOPNOTSUPP;
	}
	if (!unread)
		return 0;
	pr_err("pid %d fd %d: %s has %d unread bytes of input: a terminal's queue cannot be saved without consuming it",
	       a->pid, a->fd, a->link, unread);
	return -EOPNOTSUPP;
}

/*
 * The session whose leader, in the tree, has the slave as controlling terminal, and its
 * foreground group: for a leader that holds only the slave, and for a shell job's leader.
 */
static int dump_session_of_slave(uint32_t index, PtySlave *ps)
{
	pid_t sid, pgrp;
	int err = pty_tree_session(index, &sid, &pgrp);

	if (err)
		return err;
	ps->has_sid = ps->has_pgrp = true;
	ps->sid = pidns_view(sid);	/* /proc/PID/stat: crest's pid namespace */
	ps->pgrp = pidns_view(pgrp);
	return 0;
}

/*
 * A slave: the tty's exclusive mode, the inode's owner and mode, and the session go with the
 * record. Its master outside the tree makes it a shell job's terminal (--shell-job); inside,
 * nothing may be queued for its readers.
 */
int pty_dump_slave(const struct fd_dump_arg *a, TtyEnd *te)
{
	uint32_t index = pty_slave_index(a->st->st_rdev);
	bool inside;
	int excl = 0, err;

	te->has_index = true;
	te->index = index;
	err = pty_tree_has_master(index, &inside);
	if (err)
		return err;
	if (!inside && !a->opts->shell_job) {
		pr_err("pid %d fd %d: terminal %s belongs to a session outside the tree: use --shell-job (-j)",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	if (a->lfd >= 0)
		err = get_int(a, TIOCGEXCL, "exclusive mode", &excl);
	if (err)
		return err;
	te->slave = xmalloc(sizeof(*te->slave));
	if (!te->slave)
		return -ENOMEM;
	pty_slave__init(te->slave);
	te->slave->has_excl = te->slave->has_mode = te->slave->has_uid = te->slave->has_gid = true;
	te->slave->excl = excl;
	te->slave->mode = a->st->st_mode;
	te->slave->uid = a->st->st_uid;
	te->slave->gid = a->st->st_gid;
	te->slave->has_inside = true;
	te->slave->inside = inside;
	if (inside && a->lfd < 0) {
		pr_err("pid %d fd %d: %s: cannot reach the pty slave", a->pid, a->fd, a->link);
		return -EBADF;
	}
	err = inside ? check_slave_queue(a) : 0;
	return err ? err : dump_session_of_slave(index, te->slave);
}
