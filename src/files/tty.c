/*
 * "tty": a descriptor of a terminal. Two cases, told apart by whether a process of the tree
 * holds the pty's master (files/pty-tree.c reads that from /proc):
 *
 * - A pty pair with its master inside the tree (a program like script, tmux or sshd made it
 *   with /dev/ptmx): the pair is saved with its master and recreated at the same index, so
 *   /dev/pts/N keeps its name (files/pty-dump.c, files/pty-restore.c).
 * - A terminal of the session the tree was started from (a shell job: a pty slave whose
 *   master is outside the tree, a console, /dev/tty). It is not saved: with --shell-job it is
 *   replaced at restore by the terminal crest itself runs on, as CRIU does; a session leader
 *   of the tree that had it as controlling terminal takes that one, if it is free.
 */
#define LOG_PREFIX "files/tty: "
#include "files/files.h"
#include "files/fown.h"
#include "files/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/opts.h"
#include "util/log.h"
#include "util/util.h"

/* Pseudo-terminal masters and slaves, virtual consoles and serial lines (4), /dev/tty (5,0). */
static bool is_terminal(dev_t rdev)
{
	return pty_is_slave(rdev) || pty_is_master(rdev) || major(rdev) == 4 ||
	       (major(rdev) == 5 && minor(rdev) == 0);
}

static bool tty_match(const struct fd_dump_arg *a)
{
	return S_ISCHR(a->st->st_mode) && is_terminal(a->st->st_rdev);
}

/* An end of a pty pair inside the tree (older images have no role: shell jobs' terminals). */
static bool is_inside(const TtyEnd *te)
{
	if (!te->has_role || !te->has_index)
		return false;
	if (te->role == TTY_ROLE__PTY_MASTER)
		return true;
	return te->role == TTY_ROLE__PTY_SLAVE && te->slave && te->slave->inside;
}

/*
 * A console or /dev/tty: the terminal of the session the tree runs in. /dev/tty stands for
 * the caller's controlling terminal, which may be a pty inside the tree: a description of it
 * could only be made again by opening /dev/tty in that session, which is not done yet.
 */
static int dump_terminal(const struct fd_dump_arg *a)
{
	uint32_t index = 0;
	bool inside = false;
	int err = 0;

	if (major(a->st->st_rdev) == 5 && minor(a->st->st_rdev) == 0)
		err = pty_tree_ctty_inside(a->pid, &index, &inside);
	if (err)
		return err;
	if (inside) {
		pr_err("pid %d fd %d: /dev/tty, here /dev/pts/%u, a terminal inside the tree: reopening /dev/tty is not supported yet",
		       a->pid, a->fd, index);
		return -EOPNOTSUPP;
	}
	if (a->opts->shell_job)
		return 0;
	pr_err("pid %d fd %d: terminal %s belongs to a session outside the tree: use --shell-job (-j)",
	       a->pid, a->fd, a->link);
	return -EOPNOTSUPP;
}

static int tty_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	dev_t rdev = a->st->st_rdev;
	TtyEnd *te;
	int err;

	te = xmalloc(sizeof(*te));
	if (!te)
		return -ENOMEM;
	tty_end__init(te);
	te->path = xstrdup(a->link);
	te->flags = a->flags;
	te->has_rdev = te->has_role = true;
	te->rdev = rdev;
	if (pty_is_master(rdev)) {
		te->role = TTY_ROLE__PTY_MASTER;
		err = pty_dump_master(a, te);
	} else if (pty_is_slave(rdev)) {
		te->role = TTY_ROLE__PTY_SLAVE;
		err = pty_dump_slave(a, te);
	} else {
		te->role = TTY_ROLE__TTY_TERMINAL;
		err = dump_terminal(a);
	}
	if (!err && te->role != TTY_ROLE__TTY_TERMINAL)
		err = fown_dump(a, &te->fown);
	if (!err && !te->path)
		err = -ENOMEM;
	if (err) {
		tty_end__free_unpacked(te, NULL);
		return err;
	}
	*ret = &te->base;
	return 0;
}

static int tty_dump_finish(struct img_dir *dir, bool complete)
{
	pty_tree_forget();
	return 0;
}

/*
 * Every terminal description is created by one process, whichever pair it belongs to: pairs
 * are made in the order of their indexes, and a pair's slaves need its master (the kinds'
 * groups cannot span two kinds, hence one kind for both ends).
 */
static uint64_t tty_group(const ProtobufCMessage *rec)
{
	return 1;
}

/* The terminal crest runs on: the first of its stdin/stdout/stderr that is one. */
static int current_terminal(char *path, size_t len)
{
	for (int fd = 0; fd < 3; fd++)
		if (isatty(fd) && !ttyname_r(fd, path, len))
			return 0;
	return -ENOTTY;
}

/* A shell job's terminal comes back as the terminal crest restore runs on. */
static int open_terminal(const struct fd_open_arg *a, const TtyEnd *te)
{
	char path[PATH_MAX];
	int fd;

	if (!a->opts->shell_job) {
		pr_err("pid %d: the image holds terminal %s of a shell job: restore with --shell-job (-j)",
		       a->pid, te->path);
		return -EINVAL;
	}
	if (current_terminal(path, sizeof(path))) {
		pr_err("pid %d: no terminal to put %s on: run crest restore from a terminal",
		       a->pid, te->path);
		return -ENOTTY;
	}
	fd = open(path, (te->flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open terminal %s", a->pid, path);
	return fd;
}

static int tty_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const TtyEnd *te = (const TtyEnd *)rec;

	if (is_inside(te))
		return pty_restore_open(a, te);
	return open_terminal(a, te);
}

/*
 * A shell job's session leader (bash dumped with -j, say) had its terminal as controlling
 * terminal: it takes the terminal crest restore runs on, if no other session has it (crest
 * restore run from an interactive shell: the shell's session keeps it, as before).
 */
static int take_terminal(const struct fd_open_arg *a, const TtyEnd *te, int fd)
{
	pid_t pgrp = te->slave->pgrp;

	if (ioctl(fd, TIOCSCTTY, 0) < 0) {
		pr_warn("pid %d: the terminal it had (%s) stays without a controlling session: %s",
			a->pid, te->path, strerror(errno));
		return 0;
	}
	if (pgrp && ioctl(fd, TIOCSPGRP, &pgrp) < 0)
		return pr_errno(-errno, "pid %d: cannot give the foreground of its terminal back to process group %d",
				a->pid, pgrp);
	return 0;
}

static int tty_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			    bool owner)
{
	const TtyEnd *te = (const TtyEnd *)rec;

	if (is_inside(te))
		return pty_restore_late(a, te, fd);
	if (te->has_role && te->role == TTY_ROLE__PTY_SLAVE && te->slave && te->slave->sid &&
	    (pid_t)te->slave->sid == a->pid)
		return take_terminal(a, te, fd);
	return 0;
}

const struct fd_kind fd_kind_tty = {
	.name = "tty",
	.desc = &tty_end__descriptor,
	.match = tty_match,
	.dump = tty_dump,
	.dump_finish = tty_dump_finish,
	.group = tty_group,
	.open = tty_open,
	.restore_late = tty_restore_late,
	.restore_prepare = pty_restore_prepare,
	.restore_session = pty_restore_session,
	.restore_release = pty_restore_release,
	.keeps_fown = true,
};
