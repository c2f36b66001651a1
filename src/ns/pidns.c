/*
 * The tree's pid namespace. A tree may have one of its own when its root is that
 * namespace's init (pid 1): the restore then creates the root with CLONE_NEWPID and
 * set_tid {1}, and every other process and thread with set_tid of its pid inside (set_tid
 * of the innermost level alone works, KERNEL-NOTES row 6), so the tree sees the same pids
 * while their host pids are whatever the kernel gives.
 *
 * Images hold the pids the tree sees. crest itself always works with pids of its own
 * namespace (ptrace, /proc, kill), so the dump translates each pid it writes (pidns_view),
 * and the restore controller translates each pid it reads back before it acts on the
 * process (pidns_host). Both are the identity for a tree in crest's pid namespace, so such
 * trees keep their host pids. The translation state is per crest process: one dump or one
 * restore runs at a time, and every kind that writes or acts on a pid needs it.
 */
#define LOG_PREFIX "pidns: "
#include "ns/pidns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/pstree.h"
#include "util/log.h"
#include "util/util.h"

/* Up to 32 levels of pid namespaces (MAX_PID_NS_LEVEL). */
#define MAX_LEVELS 33

struct pid_pair {
	pid_t view;	/* as the tree sees it */
	pid_t host;	/* as crest sees it */
};

static struct {
	bool own;		/* the tree has a pid namespace of its own */
	int level;		/* dump: its column in NSpid (crest's namespace is column 0) */
	struct pid_pair *map;	/* restore: every restored thread */
	size_t nr_map, cap_map;
} pidns;

/*
 * The NSpid line of /proc/<who>/status: the pid in the namespace of crest's /proc, then in
 * each namespace below down to the task's own. Returns how many, or -errno.
 */
static int read_nspid(const char *who, pid_t *nspid)
{
	char path[64], *buf, *p;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%s/status", who);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	p = strstr(buf, "\nNSpid:");
	for (p = p ? p + 7 : NULL; p && n < MAX_LEVELS; n++) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		nspid[n] = v;
		p = end;
	}
	free(buf);
	return n ? n : -ENOENT;
}

static int read_nspid_of(pid_t pid, pid_t *nspid)
{
	char who[16];

	snprintf(who, sizeof(who), "%d", pid);
	return read_nspid(who, nspid);
}

pid_t pidns_view(pid_t host)
{
	pid_t nspid[MAX_LEVELS];
	int n;

	if (!pidns.own || host <= 0)
		return host;
	n = read_nspid_of(host, nspid);
	return n > pidns.level ? nspid[pidns.level] : 0;
}

static bool same_pidns(pid_t pid, const struct stat *want)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	return !stat(path, &st) && st.st_dev == want->st_dev && st.st_ino == want->st_ino;
}

/*
 * A process that entered the namespace by setns(2) is no descendant of its init, so the
 * walk of the tree missed it, and the restore would lose it: refuse that.
 */
static int check_all_in_tree(const struct pstree *tree)
{
	pid_t root = tree->procs[0].pid;
	struct dirent *de;
	struct stat want;
	char path[64];
	DIR *d;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", root);
	if (stat(path, &want))
		return pr_errno(-errno, "pid %d: cannot inspect %s", root, path);
	d = opendir("/proc");
	if (!d)
		return pr_errno(-errno, "cannot list /proc");
	while (!ret && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);

		if (pid <= 0 || pstree_find((struct pstree *)tree, pid) || !same_pidns(pid, &want))
			continue;
		pr_err("pid %d: lives in the pid namespace of the tree (as pid %d) but is no descendant of its root %d (it entered by setns): crest cannot checkpoint it",
		       pid, pidns_view(pid), root);
		ret = -EOPNOTSUPP;
	}
	closedir(d);
	return ret;
}

int pidns_dump_prepare(const struct pstree *tree)
{
	pid_t root = tree->procs[0].pid, self[MAX_LEVELS], nspid[MAX_LEVELS];
	int nr_self = read_nspid("self", self), n = read_nspid_of(root, nspid);

	pidns.own = false;
	if (nr_self < 0)
		return pr_errno(nr_self, "crest: cannot read NSpid of /proc/self/status");
	if (n < 0)
		return pr_errno(n, "pid %d: cannot read NSpid of /proc/%d/status", root, root);
	if (n == nr_self)
		return 0;
	if (n != nr_self + 1) {
		pr_err("pid %d: lives in a pid namespace %d levels below crest's: crest can checkpoint a pid namespace only from crest's parent namespace",
		       root, n - nr_self);
		return -EOPNOTSUPP;
	}
	if (nspid[n - 1] != 1) {
		pr_err("pid %d: is pid %d of its own pid namespace, not its init (pid 1): crest can checkpoint a pid namespace only with its init as the root of the tree",
		       root, nspid[n - 1]);
		return -EOPNOTSUPP;
	}
	pidns.own = true;
	pidns.level = n - 1;
	return check_all_in_tree(tree);
}

void pidns_dump_done(void)
{
	pidns.own = false;
}

/* ---- restore ---------------------------------------------------------------------------- */

void pidns_restore_begin(bool own)
{
	pidns.own = own;
	pidns.nr_map = 0;
}

/*
 * /proc/self resolves in the pid namespace of the /proc mount, crest's, even in a process
 * whose own pid namespace is a new one; getpid() would give the inner pid.
 */
pid_t pidns_host_self(void)
{
	char buf[32];
	ssize_t n;

	if (!pidns.own)
		return getpid();
	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0)
		return -errno;
	buf[n] = '\0';
	return atoi(buf);
}

static int add_pair(pid_t view, pid_t host)
{
	if (xgrow((void **)&pidns.map, &pidns.cap_map, pidns.nr_map + 1, sizeof(*pidns.map)))
		return -ENOMEM;
	pidns.map[pidns.nr_map++] = (struct pid_pair){ view, host };
	return 0;
}

int pidns_restore_learn(pid_t host_pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (!pidns.own)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task", host_pid);
	d = opendir(path);
	if (!d)
		return pr_errno(-errno, "restored pid %d: cannot list %s", host_pid, path);
	while (!ret && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name), nspid[MAX_LEVELS];
		int n;

		if (tid <= 0)
			continue;
		n = read_nspid_of(tid, nspid);
		if (n < 2)
			ret = pr_errno(n < 0 ? n : -EINVAL, "restored thread %d: cannot read its pid inside its namespace",
				       tid);
		else
			ret = add_pair(nspid[n - 1], tid);
	}
	closedir(d);
	return ret;
}

pid_t pidns_host(pid_t view)
{
	if (!pidns.own)
		return view;
	for (size_t i = 0; i < pidns.nr_map; i++)
		if (pidns.map[i].view == view)
			return pidns.map[i].host;
	return 0;
}

void pidns_restore_done(void)
{
	free(pidns.map);
	memset(&pidns, 0, sizeof(pidns));
}
