/*
 * "reg": a file reopened by its path: regular files, directories, and the character devices
 * that carry no state of their own (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom).
 */
#define LOG_PREFIX "files/reg: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "files.pb-c.h"
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
	if (a->link[0] != '/')
		return false;
	return S_ISREG(a->st->st_mode) || S_ISDIR(a->st->st_mode) ||
	       (S_ISCHR(a->st->st_mode) && stateless_chr(a->st->st_rdev));
}

static int reg_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	size_t len = strlen(a->link);
	RegFile *rf;

	if (len > 10 && !strcmp(a->link + len - 10, " (deleted)")) {
		pr_err("pid %d fd %d: %s: open files that were deleted are not supported yet",
		       a->pid, a->fd, a->link);
		return -EOPNOTSUPP;
	}
	rf = xmalloc(sizeof(*rf));
	if (!rf)
		return -ENOMEM;
	reg_file__init(rf);
	rf->path = xstrdup(a->link);
	rf->flags = a->flags;
	rf->pos = a->pos;
	rf->has_mode = rf->has_size = rf->has_dev = rf->has_ino = rf->has_rdev = true;
	rf->mode = a->st->st_mode;
	rf->size = a->st->st_size;
	rf->dev = a->st->st_dev;
	rf->ino = a->st->st_ino;
	rf->rdev = a->st->st_rdev;
	*ret = &rf->base;
	return rf->path ? 0 : -ENOMEM;
}

static int reg_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const RegFile *rf = (const RegFile *)rec;
	int flags = (rf->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY)) | O_CLOEXEC;
	int fd = open(rf->path, flags);

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot reopen %s", a->pid, rf->path);
	/* Directory positions are opaque cookies; seeking a regular file must work. */
	if (rf->pos && lseek(fd, rf->pos, SEEK_SET) < 0 && S_ISREG(rf->mode)) {
		int err = pr_errno(-errno, "pid %d: %s: cannot seek to %llu", a->pid, rf->path,
				   (unsigned long long)rf->pos);
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_reg = {
	.name = "reg",
	.desc = &reg_file__descriptor,
	.match = reg_match,
	.dump = reg_dump,
	.open = reg_open,
};
