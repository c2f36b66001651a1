/*
 * The tree as the terminals see it at dump: which pty masters it holds, and which of its
 * processes have which controlling terminal. A kind sees one descriptor at a time, but
 * whether a slave's master is in the tree, or who leads the session a slave belongs to, needs
 * the others: so the first terminal dumped reads them all from /proc, once per dump (the tree
 * is frozen meanwhile). A process is in the tree when its tracer is us: crest has seized
 * every thread of the tree by then (/proc/PID/status, TracerPid).
 */
#define LOG_PREFIX "files/tty: "
#include "files/files.h"
#include "files/pty.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infect/infect.h"
#include "util/log.h"
#include "util/util.h"

/* A process of the tree: its session and controlling terminal (/proc/PID/stat). */
struct tree_proc {
	pid_t pid;
	pid_t ppid;
	pid_t sid;
	pid_t tpgid;	/* foreground group of its controlling terminal, -1 if none */
	dev_t tty;	/* its controlling terminal, 0 if none */
};

static struct {
	bool scanned;
	struct tree_proc *procs;
	size_t nr_procs, cap_procs;
	uint32_t *masters;	/* indexes of the pty masters the tree holds */
	size_t nr_masters, cap_masters;
} tree;

/* Fields 4 and 6-8 of /proc/PID/stat: parent, session, tty_nr, tpgid. */
static int read_stat(struct tree_proc *tp)
{
	char path[64], *buf, *p;
	unsigned int tty_nr = 0;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/stat", tp->pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	p = buf ? strrchr(buf, ')') : NULL;
	n = p ? sscanf(p + 1, " %*c %d %*d %d %u %d", &tp->ppid, &tp->sid, &tty_nr, &tp->tpgid) : 0;
	free(buf);
	/* tty_nr is the kernel's new_encode_dev(), which glibc's makedev() encodes alike */
	tp->tty = tty_nr;
	return n == 4 ? 0 : pr_errno(-ESRCH, "pid %d: cannot read %s", tp->pid, path);
}

/* The pair a descriptor of /proc/PID/fd (dirfd) is the master of, or -1. */
static long master_index(pid_t pid, int dirfd, const char *name)
{
	char path[64], *info, *p;
	struct stat st;
	long ret = -1;

	if (fstatat(dirfd, name, &st, 0) || !S_ISCHR(st.st_mode) || !pty_is_master(st.st_rdev))
		return -1;
	/* a master's fdinfo names its pair: "tty-index:" (pty_show_fdinfo(), Linux 4.16) */
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, atoi(name));
	info = read_file_at(AT_FDCWD, path, NULL);
	p = info ? strstr(info, "\ntty-index:") : NULL;
	if (p)
		ret = strtol(p + strlen("\ntty-index:"), NULL, 10);
	free(info);
	return ret;
}

static bool has_master(uint32_t index)
{
	for (size_t i = 0; i < tree.nr_masters; i++)
		if (tree.masters[i] == index)
			return true;
	return false;
}

static int scan_masters(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return pr_errno(-errno, "pid %d: cannot list %s", pid, path);
	while (!ret && (de = readdir(d))) {
		long index = de->d_name[0] == '.' ? -1 : master_index(pid, dirfd(d), de->d_name);

		if (index < 0 || has_master(index))
			continue;
		if (xgrow((void **)&tree.masters, &tree.cap_masters, tree.nr_masters + 1,
			  sizeof(*tree.masters)))
			ret = -ENOMEM;
		else
			tree.masters[tree.nr_masters++] = index;
	}
	closedir(d);
	return ret;
}

static int add_proc(pid_t pid)
{
	struct tree_proc *tp;
	int ret;

	if (xgrow((void **)&tree.procs, &tree.cap_procs, tree.nr_procs + 1, sizeof(*tree.procs)))
		return -ENOMEM;
	tp = &tree.procs[tree.nr_procs];
	tp->pid = pid;
	ret = read_stat(tp);
	if (!ret)
		ret = scan_masters(pid);
	if (!ret)
		tree.nr_procs++;
	return ret;
}

static int scan_tree(void)
{
	struct dirent *de;
	int ret = 0;
	DIR *d;

	if (tree.scanned)
		return 0;
	d = opendir("/proc");
	if (!d)
		return pr_errno(-errno, "cannot list /proc");
	while (!ret && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);

		if (pid > 0 && infect_traced_by_us(pid))
			ret = add_proc(pid);
	}
	closedir(d);
	tree.scanned = !ret;
	return ret;
}

static const struct tree_proc *find_proc(pid_t pid)
{
	for (size_t i = 0; i < tree.nr_procs; i++)
		if (tree.procs[i].pid == pid)
			return &tree.procs[i];
	return NULL;
}

int pty_tree_has_master(uint32_t index, bool *ret)
{
	int err = scan_tree();

	*ret = !err && has_master(index);
	return err;
}

int pty_tree_session(uint32_t index, pid_t *sid, pid_t *pgrp)
{
	int err = scan_tree();

	*sid = *pgrp = 0;
	for (size_t i = 0; !err && i < tree.nr_procs; i++) {
		const struct tree_proc *tp = &tree.procs[i];

		if (tp->pid == tp->sid && tp->tty == pty_slave_dev(index)) {
			*sid = tp->sid;
			*pgrp = tp->tpgid > 0 ? tp->tpgid : 0;
		}
	}
	return err;
}

/*
 * Whether descriptor name of /proc/PID/fd (dirfd) is an end of pair index. The link is read
 * first, so that nothing but terminals is looked up (other processes' files may be anything).
 */
static bool is_end(pid_t pid, int dirfd, const char *name, uint32_t index)
{
	char link[64], slave[32];
	struct stat st;
	ssize_t n = readlinkat(dirfd, name, link, sizeof(link) - 1);

	if (n <= 0)
		return false;
	link[n] = '\0';
	snprintf(slave, sizeof(slave), "/dev/pts/%u", index);
	if (!strcmp(link, slave))
		return !fstatat(dirfd, name, &st, 0) && st.st_rdev == pty_slave_dev(index);
	if (n >= 4 && !strcmp(link + n - 4, "ptmx"))
		return master_index(pid, dirfd, name) == index;
	return false;
}

/* Whether pid holds a descriptor of pair index (its slave, or its master). */
static bool holds_end(pid_t pid, uint32_t index)
{
	char path[64];
	struct dirent *de;
	bool ret = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	while (d && !ret && (de = readdir(d)))
		ret = de->d_name[0] != '.' && is_end(pid, dirfd(d), de->d_name, index);
	if (d)
		closedir(d);
	return ret;
}

/*
 * Other processes of the tree with the slave as controlling terminal. A process gets one only
 * as a session leader, by TIOCSCTTY, or from its parent at fork. At restore the leader takes
 * the slave back before it forks its children (pty_restore_session()), so a member gets it
 * by inheritance, which needs its parent in the tree to have it too: the leader, or a member
 * that has it. Members without it drop what they inherit (pty_state.no_ctty).
 */
static int check_members(uint32_t index, pid_t sid)
{
	for (size_t i = 0; i < tree.nr_procs; i++) {
		const struct tree_proc *tp = &tree.procs[i], *parent;

		if (tp->sid != sid || tp->pid == sid || tp->tty != pty_slave_dev(index))
			continue;
		parent = find_proc(tp->ppid);
		if (parent && parent->sid == sid &&
		    (parent->pid == sid || parent->tty == pty_slave_dev(index)))
			continue;
		pr_err("pid %d: /dev/pts/%u is its controlling terminal, in session %d, but not its parent's %d: crest gives it back to the leader and to the processes that inherit it from there",
		       tp->pid, index, sid, tp->ppid);
		return -EOPNOTSUPP;
	}
	return 0;
}

int pty_tree_no_ctty(uint32_t index, pid_t sid, int32_t **ret, size_t *nr)
{
	size_t cap = 0;
	int err = scan_tree();

	*ret = NULL;
	*nr = 0;
	for (size_t i = 0; !err && i < tree.nr_procs; i++) {
		const struct tree_proc *tp = &tree.procs[i];

		if (tp->sid != sid || tp->pid == sid || tp->tty == pty_slave_dev(index))
			continue;
		if (xgrow((void **)ret, &cap, *nr + 1, sizeof(**ret)))
			err = -ENOMEM;
		else
			(*ret)[(*nr)++] = tp->pid;
	}
	return err;
}

/*
 * The slave is the controlling terminal of session sid. At restore its leader takes it back
 * with TIOCSCTTY on a descriptor of the pair, so the leader must be in the tree and hold one.
 */
int pty_tree_check_session(const struct fd_dump_arg *a, uint32_t index, pid_t sid)
{
	int err = scan_tree();

	if (err)
		return err;
	if (!find_proc(sid)) {
		pr_err("pid %d fd %d: /dev/pts/%u is the controlling terminal of session %d, whose leader is outside the tree",
		       a->pid, a->fd, index, sid);
		return -EOPNOTSUPP;
	}
	if (!holds_end(sid, index)) {
		pr_err("pid %d fd %d: /dev/pts/%u is the controlling terminal of session %d, whose leader holds no descriptor of it to take it back with",
		       a->pid, a->fd, index, sid);
		return -EOPNOTSUPP;
	}
	return check_members(index, sid);
}

/*
 * A process outside the tree holding an end of the pair would be left with a terminal that
 * no restored process shares. crest itself is skipped: it holds a copy of the master now.
 */
int pty_tree_check_outside(const struct fd_dump_arg *a, uint32_t index)
{
	struct dirent *de;
	int ret = scan_tree();
	DIR *d;

	if (ret)
		return ret;
	d = opendir("/proc");
	if (!d)
		return pr_errno(-errno, "cannot list /proc");
	while (!ret && (de = readdir(d))) {
		pid_t pid = atoi(de->d_name);

		if (pid <= 0 || pid == getpid() || find_proc(pid) || !holds_end(pid, index))
			continue;
		pr_err("pid %d fd %d: pty master of /dev/pts/%u: pid %d, outside the tree, holds an end of the pair too",
		       a->pid, a->fd, index, pid);
		ret = -EOPNOTSUPP;
	}
	closedir(d);
	return ret;
}

int pty_tree_ctty_inside(pid_t pid, uint32_t *index, bool *ret)
{
	const struct tree_proc *tp;
	int err = scan_tree();

	*ret = false;
	if (err)
		return err;
	tp = find_proc(pid);
	if (tp && pty_is_slave(tp->tty)) {
		*index = pty_slave_index(tp->tty);
		*ret = has_master(*index);
	}
	return 0;
}

void pty_tree_forget(void)
{
	free(tree.procs);
	free(tree.masters);
	memset(&tree, 0, sizeof(tree));
}
