/*
 * "signalfd": a signalfd(2) descriptor. It holds nothing but its signal mask and status
 * flags: the signals it reads wait in the pending queues of the reading thread and its
 * process, which crest saves and restores with the task. The mask is fdinfo "sigmask"
 * (signalfd_show_fdinfo() in fs/signalfd.c, since 3.8).
 */
#define LOG_PREFIX "files/signalfd: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "signalfd.pb-c.h"
#include "util/log.h"
#include "util/util.h"

static bool signalfd_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:[signalfd]");
}

/* "sigmask:\t%016llx": the kernel's sigset_t as one hex number, bit N-1 for signal N. */
static int parse_sigmask(const struct fd_dump_arg *a, uint64_t *mask)
{
	const char *p = fdinfo_value(a->fdinfo, "\nsigmask:");
	char *end;

	if (!p) {
		pr_err("pid %d fd %d: signalfd without a sigmask line in fdinfo", a->pid, a->fd);
		return -EINVAL;
	}
	errno = 0;
	*mask = strtoull(p, &end, 16);
	if (errno || end == p) {
		pr_err("pid %d fd %d: signalfd: unreadable sigmask in fdinfo", a->pid, a->fd);
		return -EINVAL;
	}
	return 0;
}

static int signalfd_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	SignalfdFile *sf;
	uint64_t mask;
	int err = parse_sigmask(a, &mask);

	if (err)
		return err;
	sf = xmalloc(sizeof(*sf));
	if (!sf)
		return -ENOMEM;
	signalfd_file__init(sf);
	sf->flags = a->flags;
	sf->sigmask = mask;
	*ret = &sf->base;
	return 0;
}

/*
 * The raw syscall takes the kernel's 8-byte mask as saved. glibc's sigaddset() would refuse
 * signals 32 and 33, which it keeps for itself but a program may still have in its mask.
 */
static int signalfd_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const SignalfdFile *sf = (const SignalfdFile *)rec;
	uint64_t mask = sf->sigmask;
	int fd, err;

	fd = syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create a signalfd for mask %#llx", a->pid,
				(unsigned long long)mask);
	if (fcntl(fd, F_SETFL, sf->flags & ~O_ACCMODE) < 0) {
		err = pr_errno(-errno, "pid %d: cannot set signalfd flags %#o", a->pid, sf->flags);
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_signalfd = {
	.name = "signalfd",
	.desc = &signalfd_file__descriptor,
	.match = signalfd_match,
	.dump = signalfd_dump,
	.open = signalfd_open,
};
