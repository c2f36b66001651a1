/*
 * "eventfd": an eventfd(2) counter. Its whole state is the 64-bit count, the EFD_SEMAPHORE
 * mode and the status flags. All three are read from /proc/PID/fdinfo (eventfd_show_fdinfo()
 * in fs/eventfd.c), never through our copy of the description: a read(2) there would
 * consume the count of the live target.
 */
#define LOG_PREFIX "files/eventfd: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "eventfd.pb-c.h"
#include "util/log.h"
#include "util/util.h"

static bool eventfd_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:[eventfd]");
}

/*
 * "eventfd-count: %16llx" (hex, space padded) since 3.8; "eventfd-semaphore: %d" only since
 * 6.5. Without the second line the mode cannot be known without consuming the count, so the
 * dump fails rather than guess.
 */
static int parse_fdinfo(const struct fd_dump_arg *a, uint64_t *count, bool *semaphore)
{
	const char *cnt = fdinfo_value(a->fdinfo, "\neventfd-count:");
	const char *sem = fdinfo_value(a->fdinfo, "\neventfd-semaphore:");
	char *end;

	if (!cnt) {
		pr_err("pid %d fd %d: eventfd without an eventfd-count line in fdinfo", a->pid, a->fd);
		return -EINVAL;
	}
	if (!sem) {
		pr_err("pid %d fd %d: eventfd: the kernel does not show eventfd-semaphore in fdinfo (before 6.5), so EFD_SEMAPHORE cannot be saved",
		       a->pid, a->fd);
		return -EOPNOTSUPP;
	}
	errno = 0;
	*count = strtoull(cnt, &end, 16);
	if (errno || end == cnt) {
		pr_err("pid %d fd %d: eventfd: unreadable eventfd-count in fdinfo", a->pid, a->fd);
		return -EINVAL;
	}
	*semaphore = strtol(sem, NULL, 10) != 0;
	return 0;
}

static int eventfd_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	EventfdFile *ef;
	uint64_t count;
	bool semaphore;
	int err;

	err = parse_fdinfo(a, &count, &semaphore);
	if (err)
		return err;
	ef = xmalloc(sizeof(*ef));
	if (!ef)
		return -ENOMEM;
	eventfd_file__init(ef);
	ef->flags = a->flags;
	ef->count = count;
	ef->semaphore = semaphore;
	*ret = &ef->base;
	return 0;
}

/*
 * eventfd(2) takes an unsigned int as its initial value; a larger count is added with one
 * write(2). On a new counter (0) a write of anything up to 0xfffffffffffffffe never blocks,
 * and the kernel refuses 0xffffffffffffffff, a count no eventfd can hold.
 */
static int set_count(const struct fd_open_arg *a, int fd, uint64_t count)
{
	ssize_t n;

	if (!count)
		return 0;
	n = write(fd, &count, sizeof(count));
	if (n == (ssize_t)sizeof(count))
		return 0;
	return pr_errno(n < 0 ? -errno : -EIO, "pid %d: cannot set the eventfd count to %#llx",
			a->pid, (unsigned long long)count);
}

static int eventfd_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const EventfdFile *ef = (const EventfdFile *)rec;
	int flags = EFD_CLOEXEC | EFD_NONBLOCK | (ef->semaphore ? EFD_SEMAPHORE : 0);
	int fd = eventfd(0, flags), err;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create an eventfd", a->pid);
	err = set_count(a, fd, ef->count);
	/* F_SETFL keeps the access mode and takes the status flags the target had. */
	if (!err && fcntl(fd, F_SETFL, ef->flags & ~O_ACCMODE) < 0)
		err = pr_errno(-errno, "pid %d: cannot set eventfd flags %#o", a->pid, ef->flags);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_eventfd = {
	.name = "eventfd",
	.desc = &eventfd_file__descriptor,
	.match = eventfd_match,
	.dump = eventfd_dump,
	.open = eventfd_open,
};
