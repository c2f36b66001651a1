/*
 * Finding and freezing the tree. New threads and children can appear until every thread of a
 * process is stopped, so the walk repeats until one full pass finds nothing new.
 */
#define LOG_PREFIX "pstree: "
#include "core/pstree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "infect/infect.h"
#include "util/log.h"
#include "util/util.h"

struct proc_stat {
	char state;
	pid_t ppid, pgid, sid;
	int exit_code;
};

/* /proc/PID/stat: "pid (comm) state ppid pgrp session ..." and field 52, exit_code. */
static int read_stat(pid_t pid, struct proc_stat *ps)
{
	char path[64], *buf, *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %d %d %d", &ps->state, &ps->ppid, &ps->pgid, &ps->sid) != 4) {
		free(buf);
		return -EINVAL;
	}
	ps->exit_code = 0;
	/* After the loop p is at the space before field 52. */
	for (field = 3; p && field <= 52; field++)
		p = strchr(p + 1, ' ');
	if (p)
		ps->exit_code = atoi(p + 1);
	free(buf);
	return 0;
}

static void read_comm(pid_t pid, char *comm, size_t len)
{
	char path[64], *buf;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (buf) {
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(comm, len, "%s", buf);
		free(buf);
	}
}

struct pstree_proc *pstree_find(struct pstree *tree, pid_t pid)
{
	for (size_t i = 0; i < tree->nr; i++)
		if (tree->procs[i].pid == pid)
			return &tree->procs[i];
	return NULL;
}

static bool has_thread(const struct pstree_proc *p, pid_t tid)
{
	for (size_t i = 0; i < p->nr_threads; i++)
		if (p->threads[i] == tid)
			return true;
	return false;
}

/*
 * A leader that called pthread_exit() shows state Z while its other threads run on: not a
 * zombie to save, and crest cannot create a thread group without its leader. Refuse it
 * rather than save the process as a zombie and lose those threads.
 */
static int check_leader_alone(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int others = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;	/* reaped meanwhile: a plain zombie, or gone */
	while ((de = readdir(d)))
		others += atoi(de->d_name) > 0 && atoi(de->d_name) != pid;
	closedir(d);
	if (!others)
		return 0;
	pr_err("pid %d: its thread-group leader has exited (pthread_exit) while %d other thread(s) run on: crest cannot checkpoint that",
	       pid, others);
	return -EOPNOTSUPP;
}

static int add_proc(struct pstree *tree, pid_t pid)
{
	struct proc_stat ps;
	struct pstree_proc *p;
	int ret = read_stat(pid, &ps);

	if (ret)
		return ret == -ENOENT ? -ESRCH : ret;
	if (ps.state == 'Z' && (ret = check_leader_alone(pid)))
		return ret;
	if (xgrow((void **)&tree->procs, &tree->cap, tree->nr + 1, sizeof(*tree->procs)))
		return -ENOMEM;
	p = &tree->procs[tree->nr++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->ppid = ps.ppid;
	p->pgid = ps.pgid;
	p->sid = ps.sid;
	p->zombie = ps.state == 'Z';
	p->exit_status = ps.exit_code;
	if (p->zombie)
		read_comm(pid, p->comm, sizeof(p->comm));
	return 0;
}

/*
 * The leader exited while the tree was being frozen. Its parent is in the tree (the root
 * cannot get here: it is checked first), so it stays a zombie until the parent, frozen now,
 * reaps it: save it as one. A process already reaped is gone: -ENOENT drops it.
 */
static int became_zombie(struct pstree_proc *p)
{
	struct proc_stat ps;

	if (read_stat(p->pid, &ps))
		return -ENOENT;
	if (ps.state != 'Z' && ps.state != 'X')
		return pr_errno(-ESRCH, "pid %d: cannot be frozen and has not exited", p->pid);
	p->zombie = true;
	p->exit_status = ps.exit_code;
	read_comm(p->pid, p->comm, sizeof(p->comm));
	pstree_release_proc(p);
	p->nr_threads = 0;
	return 0;
}

/* Seizes threads of p not seized yet; *found is set when there were any. */
static int seize_threads(struct pstree_proc *p, int timeout_ms, bool *found)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", p->pid);
	d = opendir(path);
	if (!d && errno == ENOENT)
		return became_zombie(p);
	if (!d)
		return pr_errno(-errno, "pid %d: cannot list threads", p->pid);
	while (!ret && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || has_thread(p, tid))
			continue;
		ret = infect_seize(tid, timeout_ms);
		if (ret == -ESRCH && tid != p->pid) {	/* a thread that just exited */
			ret = 0;
			continue;
		}
		if (ret == -ESRCH)
			ret = became_zombie(p);
		/* infect said why it could not freeze the thread. */
		if (ret)
			break;
		if (p->zombie)
			break;
		ret = xgrow((void **)&p->threads, &p->cap_threads, p->nr_threads + 1, sizeof(pid_t));
		if (!ret) {
			/* Keep the leader first: restore creates it as the process itself. */
			p->threads[p->nr_threads++] = tid;
			if (tid == p->pid) {
				p->threads[p->nr_threads - 1] = p->threads[0];
				p->threads[0] = tid;
			}
		}
		*found = true;
	}
	closedir(d);
	return ret;
}

/* Children of every thread of p (/proc/PID/task/TID/children) not in the tree yet. */
static int add_children(struct pstree *tree, size_t idx, bool *found)
{
	for (size_t t = 0; t < tree->procs[idx].nr_threads; t++) {
		char path[96], *buf, *p, *end;
		pid_t pid = tree->procs[idx].pid;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, tree->procs[idx].threads[t]);
		buf = read_file_at(AT_FDCWD, path, NULL);
		if (!buf)
			return pr_errno(-errno, "pid %d: cannot read %s", pid, path);
		for (p = buf;; p = end) {
			pid_t child = strtol(p, &end, 10);
			int ret;

			if (end == p)
				break;
			if (pstree_find(tree, child))
				continue;
			ret = add_proc(tree, child);
			if (ret) {
				free(buf);
				/* -EOPNOTSUPP: add_proc said what crest cannot checkpoint */
				return ret == -EOPNOTSUPP ? ret :
					pr_errno(ret, "pid %d: cannot add child %d", pid, child);
			}
			*found = true;
		}
		free(buf);
	}
	return 0;
}

static void drop_proc(struct pstree *tree, size_t i)
{
	free(tree->procs[i].threads);
	memmove(&tree->procs[i], &tree->procs[i + 1], (tree->nr - i - 1) * sizeof(*tree->procs));
	tree->nr--;
}

static int freeze_pass(struct pstree *tree, int timeout_ms, bool *found)
{
	for (size_t i = 0; i < tree->nr; i++) {
		int ret;

		if (tree->procs[i].zombie)
			continue;
		ret = seize_threads(&tree->procs[i], timeout_ms, found);
		if (ret == -ENOENT && i > 0) {	/* exited and reaped meanwhile */
			drop_proc(tree, i--);
			continue;
		}
		if (!ret && !tree->procs[i].zombie)
			ret = add_children(tree, i, found);
		if (ret)
			return ret;
	}
	return 0;
}

int pstree_freeze(pid_t root, int timeout_ms, struct pstree *ret)
{
	struct pstree tree = { 0 };
	bool found = true;
	int err = add_proc(&tree, root);

	if (err) {
		if (err != -EOPNOTSUPP)	/* add_proc said what crest cannot checkpoint */
			pr_err("pid %d: %s", root, err == -ESRCH ? "no such process" : strerror(-err));
		return err;
	}
	if (tree.procs[0].zombie) {
		pr_err("pid %d: is a zombie; there is nothing to dump", root);
		pstree_free(&tree);
		return -ESRCH;
	}
	while (!err && found) {
		found = false;
		err = freeze_pass(&tree, timeout_ms, &found);
	}
	if (!err && tree.procs[0].zombie)
		err = pr_errno(-ESRCH, "pid %d: exited while it was being frozen", root);
	if (err) {
		pstree_release(&tree);
		pstree_free(&tree);
		return err;
	}
	tree.procs[0].ppid = 0;
	*ret = tree;
	return 0;
}

void pstree_release_proc(struct pstree_proc *p)
{
	for (size_t t = 0; t < p->nr_threads; t++)
		infect_release(p->threads[t]);
}

void pstree_release(struct pstree *tree)
{
	for (size_t i = 0; i < tree->nr; i++)
		pstree_release_proc(&tree->procs[i]);
}

void pstree_kill(struct pstree *tree)
{
	/* SIGKILL works on stopped, traced tasks; children first, so none is reparented alive. */
	for (size_t i = tree->nr; i-- > 0;)
		if (!tree->procs[i].zombie)
			kill(tree->procs[i].pid, SIGKILL);
}

void pstree_wait_killed(struct pstree *tree)
{
	/*
	 * A killed tracee needs no detach: its exit ends the trace. Waiting for each exit
	 * (tracers are notified) means that when dump returns the tree is gone, and only its
	 * parent's reaping stands between the user and a restore with the same pids. Children
	 * first: the init of a pid namespace does not finish exiting before every process of
	 * its namespace is reaped, and a traced one is reaped only after crest waited for it.
	 */
	for (size_t i = tree->nr; i-- > 0;)
		/* The leader's exit is reported only after every other thread's: it goes last. */
		for (size_t t = tree->procs[i].nr_threads; t-- > 0;)
			while (waitpid(tree->procs[i].threads[t], NULL, __WALL) < 0 && errno == EINTR)
				;
}

void pstree_free(struct pstree *tree)
{
	for (size_t i = 0; i < tree->nr; i++)
		free(tree->procs[i].threads);
	free(tree->procs);
	memset(tree, 0, sizeof(*tree));
}
