/*
 * "epoll": an epoll instance and its interest list.
 *
 * The interest list is read from /proc/PID/fdinfo/N, one line per watched (file, fd number)
 * pair, in the order of the instance's red-black tree (fs/eventpoll.c, ep_show_fdinfo, 3.8):
 *
 *   tfd:        5 events:       19 data:             1234  pos:0 ino:4c3d4 sdev:f
 *
 * "tfd" is the number the target was added with, not a reference to the file. A process may
 * close that number after EPOLL_CTL_ADD while another descriptor keeps the file open: the
 * epoll still watches the file, and the number names something else or nothing. At restore
 * EPOLL_CTL_ADD can name a file only by a number of the restoring process, so the dump checks
 * every entry with kcmp(KCMP_EPOLL_TFD) (4.13), which compares the watched file itself with
 * the process's fd of the same number, and refuses the epoll when they differ.
 *
 * Restore: the owner creates the instance (open); once the process's whole fd table is
 * installed, the process the dump checked the numbers against adds the interest list
 * (restore_late). The ready list is not saved: EPOLL_CTL_ADD polls each target, so
 * level-triggered readiness comes back by itself. An EPOLLET entry whose file is ready is
 * reported once after restore even if that edge had been reported before the dump (a spurious
 * wakeup, which edge-triggered code tolerates by design). A fired EPOLLONESHOT entry keeps
 * only its flag bits (EP_PRIVATE_BITS) and polls nothing until EPOLL_CTL_MOD re-arms it; it
 * is restored by firing it again (add_fired_oneshot). EPOLLWAKEUP needs CAP_BLOCK_SUSPEND at
 * restore, or the kernel silently drops it, as it did for the original.
 */
#define LOG_PREFIX "files/epoll: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sysmacros.h>
#include <linux/kcmp.h>

#include "epoll.pb-c.h"
#include "ns/pidns.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

static bool epoll_match(const struct fd_dump_arg *a)
{
	return !strcmp(a->link, "anon_inode:[eventpoll]");
}

/* One "tfd:" line; *sdev is the target's s_dev in the kernel's encoding (major << 20). */
static int parse_target(const struct fd_dump_arg *a, const char *line, EpollTarget *t,
			uint32_t *sdev)
{
	unsigned long long data, ino;
	long long pos;
	unsigned int events;
	int tfd;

	if (sscanf(line, "tfd: %d events: %x data: %llx pos:%lli ino:%llx sdev:%x", &tfd,
		   &events, &data, &pos, &ino, sdev) != 6 || tfd < 0) {
		pr_err("pid %d fd %d: unexpected epoll fdinfo line: %.80s", a->pid, a->fd, line);
		return -EINVAL;
	}
	t->tfd = tfd;
	t->events = events;
	t->data = data;
	t->has_ino = true;
	t->ino = ino;
	return 0;
}

/* Without kcmp(KCMP_EPOLL_TFD): the fd must at least open the same inode. */
static int same_inode(const struct fd_dump_arg *a, const EpollTarget *t, uint32_t sdev)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/fd/%u", a->pid, t->tfd);
	if (stat(path, &st))
		return errno == ENOENT ? -EBADF : -errno;
	return st.st_ino == t->ino && st.st_dev == makedev(sdev >> 20, sdev & 0xfffff) ? 0 : 1;
}

/*
 * 0 when fd tfd of the process is the very file the entry watches. toff counts the earlier
 * entries with the same tfd (the same number added again after a close), which is how
 * KCMP_EPOLL_TFD tells them apart.
 */
static int check_target(const struct fd_dump_arg *a, const EpollTarget *t, uint32_t toff,
			uint32_t sdev)
{
	struct kcmp_epoll_slot slot = { .efd = a->fd, .tfd = t->tfd, .toff = toff };
	int r = sys_kcmp(a->pid, a->pid, KCMP_EPOLL_TFD, t->tfd, (unsigned long)&slot);

	if (r < 0 && (errno == ENOSYS || errno == EINVAL))
		r = same_inode(a, t, sdev);
	else if (r < 0)
		r = -errno;
	if (r == -EBADF) {
		pr_err("pid %d fd %d: epoll watches a file (inode %" PRIu64 ") through fd %u, which was closed since (or belongs to another process sharing the epoll): cannot restore it",
		       a->pid, a->fd, t->ino, t->tfd);
		return -EOPNOTSUPP;
	}
	if (r > 0) {
		pr_err("pid %d fd %d: epoll watches a file (inode %" PRIu64 ") through fd %u, which now holds another file: cannot restore it",
		       a->pid, a->fd, t->ino, t->tfd);
		return -EOPNOTSUPP;
	}
	if (r < 0)
		return pr_errno(r, "pid %d fd %d: cannot compare epoll target fd %u", a->pid, a->fd,
				t->tfd);
	return 0;
}

static uint32_t count_tfd(const EpollFile *ef, uint32_t tfd)
{
	uint32_t n = 0;

	for (size_t i = 0; i < ef->n_targets; i++)
		n += ef->targets[i]->tfd == tfd;
	return n;
}

/* Parses, checks and appends the entry of one "tfd:" line. */
static int dump_target(const struct fd_dump_arg *a, const char *line, EpollFile *ef, size_t *cap)
{
	EpollTarget *t;
	uint32_t sdev;
	int ret;

	if (xgrow((void **)&ef->targets, cap, ef->n_targets + 1, sizeof(*ef->targets)))
		return -ENOMEM;
	t = xmalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	epoll_target__init(t);
	ret = parse_target(a, line, t, &sdev);
	if (!ret)
		ret = check_target(a, t, count_tfd(ef, t->tfd), sdev);
	if (ret) {
		free(t);
		return ret;
	}
	ef->targets[ef->n_targets++] = t;
	return 0;
}

static int epoll_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	EpollFile *ef = xmalloc(sizeof(*ef));
	size_t cap = 0;
	int err = 0;

	/* its interest list names descriptors by their numbers in the process that added them */
	if (a->via_pid) {
		free(ef);
		pr_err("pid %d fd %d: unix socket has an epoll in flight (SCM_RIGHTS) in its receive queue: crest cannot save an epoll that no process holds",
		       a->via_pid, a->via_fd);
		return -EOPNOTSUPP;
	}
	if (!ef)
		return -ENOMEM;
	epoll_file__init(ef);
	ef->flags = a->flags;
	ef->pid = pidns_view(a->pid);
	for (const char *line = a->fdinfo; !err && line && *line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (!strncmp(line, "tfd:", 4))
			err = dump_target(a, line, ef, &cap);
	}
	if (err) {
		epoll_file__free_unpacked(ef, NULL);
		return err;
	}
	pr_debug("pid %d fd %d: epoll with %zu targets", a->pid, a->fd, ef->n_targets);
	*ret = &ef->base;
	return 0;
}

static int epoll_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const EpollFile *ef = (const EpollFile *)rec;
	int fd = epoll_create1(EPOLL_CLOEXEC), err;

	if (fd < 0)
		return pr_errno(-errno, "pid %d: cannot create epoll", a->pid);
	if (fcntl(fd, F_SETFL, ef->flags & ~O_ACCMODE) < 0) {
		err = pr_errno(-errno, "pid %d: cannot set epoll flags %#o", a->pid, ef->flags);
		close(fd);
		return err;
	}
	return fd;
}

/* The flags a fired one-shot entry keeps (EP_PRIVATE_BITS in fs/eventpoll.c). */
#define EP_FLAG_BITS (EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE)
/* Every readiness bit a file's poll may report. */
#define EP_POLL_BITS (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDNORM | \
		      EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP)

static int ctl(const struct fd_open_arg *a, int fd, int op, const EpollTarget *t,
	       uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = t->data };

	if (epoll_ctl(fd, op, t->tfd, &ev))
		return pr_errno(-errno, "pid %d fd %d: cannot %s fd %u (events %#x) in epoll",
				a->pid, fd, op == EPOLL_CTL_ADD ? "add" : "modify", t->tfd, events);
	return 0;
}

static bool fired_oneshot(const EpollTarget *t)
{
	return (t->events & EPOLLONESHOT) && !(t->events & ~EP_FLAG_BITS);
}

/*
 * A fired EPOLLONESHOT entry polls nothing, not even EPOLLERR/EPOLLHUP, which EPOLL_CTL_ADD
 * and EPOLL_CTL_MOD always add. The only way back to that state is to fire it again: add it
 * listening for everything and collect it with epoll_wait, while the instance holds nothing
 * that could fire but the entries already done. A file ready for nothing cannot fire; its
 * entry stays armed for EPOLLERR/EPOLLHUP only, and restore says so.
 */
static int add_fired_oneshot(const struct fd_open_arg *a, int fd, const EpollTarget *t)
{
	struct epoll_event ev;
	int n, ret = ctl(a, fd, EPOLL_CTL_ADD, t, t->events | EP_POLL_BITS);

	if (ret)
		return ret;
	n = epoll_wait(fd, &ev, 1, 0);
	if (n < 0)
		return pr_errno(-errno, "pid %d fd %d: cannot fire the one-shot entry of fd %u",
				a->pid, fd, t->tfd);
	if (n == 1)
		return 0;
	pr_warn("pid %d fd %d: the fired EPOLLONESHOT entry of fd %u cannot be fired again (its file is not ready): it is restored armed for EPOLLERR and EPOLLHUP",
		a->pid, fd, t->tfd);
	return ctl(a, fd, EPOLL_CTL_MOD, t, t->events);
}

/*
 * Adds the interest list. Runs after the fd table is installed, so every tfd is the number
 * the dump checked; only one process adds, since the list belongs to the shared instance.
 * Fired one-shot entries go first, into an instance where nothing else can fire.
 */
static int epoll_restore_late(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			      bool owner)
{
	const EpollFile *ef = (const EpollFile *)rec;
	int ret = 0;

	if (!owner)
		return 0;
	/* The owner is the first holder in tree order, as the dumped process was. */
	if ((uint32_t)a->pid != ef->pid) {
		pr_err("pid %d fd %d: epoll targets name fds of pid %u, but pid %d restores them",
		       a->pid, fd, ef->pid, a->pid);
		return -EINVAL;
	}
	for (size_t i = 0; !ret && i < ef->n_targets; i++)
		if (fired_oneshot(ef->targets[i]))
			ret = add_fired_oneshot(a, fd, ef->targets[i]);
	for (size_t i = 0; !ret && i < ef->n_targets; i++)
		if (!fired_oneshot(ef->targets[i]))
			ret = ctl(a, fd, EPOLL_CTL_ADD, ef->targets[i], ef->targets[i]->events);
	return ret;
}

const struct fd_kind fd_kind_epoll = {
	.name = "epoll",
	.desc = &epoll_file__descriptor,
	.match = epoll_match,
	.dump = epoll_dump,
	.open = epoll_open,
	.restore_late = epoll_restore_late,
};
