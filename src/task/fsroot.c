/*
 * "fsroot": the root directory of a process (chroot(2)), which /proc/PID/root shows. Its
 * readlink is the path from crest's own root, as every other path in the image is, so the
 * restore needs host paths until the very end: files are opened, memory premapped, the
 * restorer and its exe found through crest's root, and only then, in restore_final before
 * credentials drop the capability, a remote chroot(2) in the process moves it into its
 * root. Threads share it, and so do processes made with CLONE_FS: the first of those
 * chroots them all, and the others find their root already in place. The cwd was set, by
 * host path, before and stays as it is.
 */
#define LOG_PREFIX "task/fsroot: "
#include "task/task.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsroot.pb-c.h"
#include "infect/infect.h"
#include "util/log.h"
#include "util/util.h"

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * The root's path is only good if crest reaches the same directory by it: a root outside
 * crest's (d_path names it from the real root), or one deleted since, cannot be named.
 */
static int check_named(pid_t pid, const char *proc, const char *link)
{
	struct stat want, got;

	if (stat(proc, &want))
		return pr_errno(-errno, "pid %d: cannot inspect its root directory %s", pid, proc);
	if (link[0] != '/' || stat(link, &got) || !same_file(&want, &got)) {
		pr_err("pid %d: its root directory (chroot) '%s' is not reachable by that path from crest's root: cannot checkpoint it",
		       pid, link);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int fsroot_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	char proc[64], link[PATH_MAX];
	FsRoot *fr;
	ssize_t n;
	int err;

	snprintf(proc, sizeof(proc), "/proc/%d/root", pid);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0)
		return pr_errno(-errno, "pid %d: cannot read %s", pid, proc);
	link[n] = '\0';
	err = check_named(pid, proc, link);
	if (err || !strcmp(link, "/"))
		return err;
	fr = xmalloc(sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	fs_root__init(fr);
	fr->path = xstrdup(link);
	if (!fr->path) {
		free(fr);
		return -ENOMEM;
	}
	*ret = &fr->base;
	return 0;
}

/*
 * A process sharing its fs with one restored before it (CLONE_FS) is already there: a second
 * chroot would resolve the path inside the new root. Both stats name the directory from
 * crest's root.
 */
static bool already_there(pid_t pid, const char *path)
{
	char proc[64];
	struct stat want, now;

	snprintf(proc, sizeof(proc), "/proc/%d/root", pid);
	return !stat(path, &want) && !stat(proc, &now) && same_file(&want, &now);
}

static int fsroot_restore(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *rec)
{
	const FsRoot *fr = (const FsRoot *)rec;
	size_t len = strlen(fr->path) + 1;
	long args[6] = { 0 }, r;
	uint64_t scratch;
	int ret;

	if (len > PATH_MAX || fr->path[0] != '/')
		return pr_errno(-EINVAL, "pid %d: root directory '%s' in the image is not an absolute path",
				pid, fr->path);
	if (already_there(pid, fr->path))
		return 0;
	ret = infect_scratch(ctl, len, &scratch);
	if (!ret)
		ret = infect_write(ctl, scratch, fr->path, len);
	args[0] = (long)scratch;
	if (!ret)
		ret = infect_syscall(ctl, SYS_chroot, args, &r);
	if (!ret && r)
		ret = pr_errno((int)r, "pid %d: cannot chroot to its root directory %s", pid, fr->path);
	return ret;
}

const struct task_kind task_kind_fsroot = {
	.name = "fsroot",
	.desc = &fs_root__descriptor,
	.dump = fsroot_dump,
	.restore_final = fsroot_restore,
};
