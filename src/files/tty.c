/*
 * "tty": a terminal that belongs to the session the tree was started from (a shell job).
 * It is not saved: with --shell-job it is replaced at restore by the terminal crest itself
 * runs on, as CRIU does. Terminals inside the tree (pty pairs) are another kind.
 */
#define LOG_PREFIX "files/tty: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli/opts.h"
#include "files.pb-c.h"
#include "util/log.h"
#include "util/util.h"

/* Pseudo-terminal slaves (136-143), virtual consoles and serial lines (4), /dev/tty (5,0). */
static bool is_terminal(dev_t rdev)
{
	unsigned int maj = major(rdev);

	return (maj >= 136 && maj <= 143) || maj == 4 || (maj == 5 && minor(rdev) == 0);
}

static bool tty_match(const struct fd_dump_arg *a)
{
	return S_ISCHR(a->st->st_mode) && is_terminal(a->st->st_rdev);
}

static int tty_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	TtyFile *tf;

	if (!a->opts->shell_job) {
		pr_err("pid %d fd %d: terminal %s belongs to a session outside the tree: use --shell-job (-j)",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	tf = xmalloc(sizeof(*tf));
	if (!tf)
		return -ENOMEM;
	tty_file__init(tf);
	tf->path = xstrdup(a->link);
	tf->flags = a->flags;
	tf->has_rdev = true;
	tf->rdev = a->st->st_rdev;
	*ret = &tf->base;
	return tf->path ? 0 : -ENOMEM;
}

/* The terminal crest runs on: the first of its stdin/stdout/stderr that is one. */
static int current_terminal(char *path, size_t len)
{
	for (int fd = 0; fd < 3; fd++)
		if (isatty(fd) && !ttyname_r(fd, path, len))
			return 0;
	return -ENOTTY;
}

static int tty_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const TtyFile *tf = (const TtyFile *)rec;
	char path[PATH_MAX];
	int fd;

	if (!a->opts->shell_job) {
		pr_err("pid %d: the image holds terminal %s of a shell job: restore with --shell-job (-j)",
		       a->pid, tf->path);
		return -EINVAL;
	}
	if (current_terminal(path, sizeof(path))) {
		pr_err("pid %d: no terminal to put %s on: run crest restore from a terminal",
		       a->pid, tf->path);
		return -ENOTTY;
	}
	fd = open(path, (tf->flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot open terminal %s", a->pid, path);
	return fd;
}

const struct fd_kind fd_kind_tty = {
	.name = "tty",
	.desc = &tty_file__descriptor,
	.match = tty_match,
	.dump = tty_dump,
	.open = tty_open,
};
