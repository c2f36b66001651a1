/*
 * Time namespaces (time_namespaces(7)). CLOCK_MONOTONIC and CLOCK_BOOTTIME count from the
 * host's boot, so a tree restored later, or on another machine, would see them jump forward or
 * even run backwards. A tree in a time namespace of its own sees the host's clocks plus that
 * namespace's offsets; at restore crest picks new offsets so that its clocks go on from where
 * they stood at dump. Offsets are always relative to the host's clocks (the initial time
 * namespace's), whatever namespace crest itself runs in.
 */
#define LOG_PREFIX "ns: "
#include "ns/ns.h"
#include "ns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

#define NSEC_PER_SEC 1000000000LL

/* A value of each of the two clocks a time namespace offsets, in nanoseconds. */
struct timens_clocks {
	int64_t mono;
	int64_t boot;
};

/* One line of timens_offsets, "monotonic  SECS  NSECS", into the matching field. */
static int parse_offset(const char *line, struct timens_clocks *c, unsigned int *seen)
{
	char name[16];
	long long sec;
	long nsec;

	if (sscanf(line, "%15s %lld %ld", name, &sec, &nsec) != 3)
		return -EINVAL;
	if (!strcmp(name, "monotonic")) {
		c->mono = sec * NSEC_PER_SEC + nsec;
		*seen |= 1;
	} else if (!strcmp(name, "boottime")) {
		c->boot = sec * NSEC_PER_SEC + nsec;
		*seen |= 2;
	}
	return 0;
}

/*
 * /proc/WHO/timens_offsets ("self" or a pid). The kernel shows the offsets of the namespace
 * the process's children are born in (time_for_children); ns_dump has checked that this is
 * the process's own one.
 */
static int read_offsets(const char *who, struct timens_clocks *ret)
{
	char path[64], *buf;
	unsigned int seen = 0;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%s/timens_offsets", who);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return pr_errno(-errno, "cannot read %s", path);
	for (char *line = strtok(buf, "\n"); !err && line; line = strtok(NULL, "\n"))
		err = parse_offset(line, ret, &seen);
	free(buf);
	if (err || seen != 3) {
		pr_err("%s: unexpected format: want a monotonic and a boottime line", path);
		return -EINVAL;
	}
	return 0;
}

/* The host's clocks now: crest's own, less the offsets of the namespace crest is in. */
static int host_clocks(struct timens_clocks *ret)
{
	struct timens_clocks own;
	struct timespec mono, boot;
	int err = read_offsets("self", &own);

	if (err)
		return err;
	if (clock_gettime(CLOCK_MONOTONIC, &mono) || clock_gettime(CLOCK_BOOTTIME, &boot))
		return pr_errno(-errno, "cannot read the clocks");
	ret->mono = mono.tv_sec * NSEC_PER_SEC + mono.tv_nsec - own.mono;
	ret->boot = boot.tv_sec * NSEC_PER_SEC + boot.tv_nsec - own.boot;
	return 0;
}

int ns_timens_dump(pid_t pid, NsEntry *e)
{
	struct timens_clocks host, off;
	char who[16];
	int err;

	snprintf(who, sizeof(who), "%d", pid);
	err = read_offsets(who, &off);
	if (!err)
		err = host_clocks(&host);
	if (err)
		return err;
	/* The tree is frozen: these are the last values it could have seen. */
	e->has_monotonic_offset = e->has_boottime_offset = true;
	e->monotonic_offset = off.mono;
	e->boottime_offset = off.boot;
	e->has_monotonic = e->has_boottime = true;
	e->monotonic = host.mono + off.mono;
	e->boottime = host.boot + off.boot;
	pr_debug("pid %d: time namespace, monotonic %" PRIu64 " ns, boottime %" PRIu64 " ns inside",
		 pid, e->monotonic, e->boottime);
	return 0;
}

/* "monotonic SECS NSECS": the kernel wants 0 <= NSECS < 1 s, also for negative offsets. */
static int format_offset(char *buf, size_t len, const char *name, int64_t off)
{
	int64_t sec = off / NSEC_PER_SEC, nsec = off % NSEC_PER_SEC;

	if (nsec < 0) {
		nsec += NSEC_PER_SEC;
		sec--;
	}
	return snprintf(buf, len, "%s %" PRId64 " %" PRId64 "\n", name, sec, nsec);
}

/*
 * Offsets for the new namespace: dumped value - host now, for each clock, so that the tree
 * reads the value it last saw plus the time since this moment (the kernel adds the offset to
 * a host clock that only grows): never less than at dump, and the time the tree spent in
 * the image is not counted, as CRIU does. The original offsets are deliberately not used as
 * a floor: they mean nothing on another boot or machine, and on the same boot they would
 * only add the whole time spent in the image as one forward jump; monotony needs no floor.
 * Both are written in one write(2), while no task is in the namespace yet (later the kernel
 * refuses with EACCES).
 */
static int write_offsets(const NsEntry *ns, const struct timens_clocks *host)
{
	int64_t mono = (int64_t)ns->monotonic - host->mono, boot = (int64_t)ns->boottime - host->boot;
	char buf[128];
	ssize_t n;
	int fd, len;

	len = format_offset(buf, sizeof(buf), "monotonic", mono);
	len += format_offset(buf + len, sizeof(buf) - len, "boottime", boot);
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "cannot open /proc/self/timens_offsets");
	n = write(fd, buf, len);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n != len)
		return pr_errno(n < 0 ? (int)n : -EIO, "cannot set the clock offsets of the tree's time namespace (monotonic %+" PRId64 " ns, boottime %+" PRId64 " ns)",
				mono, boot);
	pr_debug("time namespace offsets: monotonic %+" PRId64 " ns, boottime %+" PRId64 " ns",
		 mono, boot);
	return 0;
}

int ns_timens_prepare(const NsEntry *ns, int *ret_saved)
{
	struct timens_clocks host;
	int saved, err;

	*ret_saved = -1;
	if (!ns || !ns->time)
		return 0;
	/* Before unshare: /proc/self/timens_offsets then shows crest's own namespace. */
	err = host_clocks(&host);
	if (err)
		return err;
	saved = open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC);
	if (saved < 0)
		return pr_errno(-errno, "cannot open crest's time namespace");
	/* CLONE_NEWTIME moves only the children forked from now on, never the caller. */
	if (unshare(CLONE_NEWTIME)) {
		err = pr_errno(-errno, "cannot create a time namespace for the tree");
		close(saved);
		return err;
	}
	err = write_offsets(ns, &host);
	if (err) {
		ns_timens_done(saved);
		return err;
	}
	*ret_saved = saved;
	return 0;
}

void ns_timens_done(int saved)
{
	if (saved < 0)
		return;
	/*
	 * setns(2) into the namespace crest is in sets its time_for_children back to it. It
	 * fails only if crest has threads (EUSERS); then later children of crest, of which
	 * restore has none, would share the tree's clocks.
	 */
	if (setns(saved, CLONE_NEWTIME))
		pr_warn("cannot return to crest's own time namespace for later children: %s",
			strerror(errno));
	close(saved);
}
