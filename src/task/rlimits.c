/*
 * "rlimits": resource limits. Read from /proc/PID/limits, because prlimit() on another
 * process needs CAP_SYS_RESOURCE or matching ids, and root here lacks that capability.
 * Restored by the process itself, last before the restorer, so no limit binds crest's own
 * work. Raising a hard limit above crest's needs CAP_SYS_RESOURCE: such a limit is reported
 * by name and the restore fails, rather than the process coming back with another limit.
 */
#define LOG_PREFIX "task/rlimits: "
#include "task/task.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rlimits.pb-c.h"
#include "util/log.h"
#include "util/util.h"

/* The rows of /proc/PID/limits, in RLIMIT_* order (fs/proc/base.c lnames[]). */
static const char *const limit_names[RLIM_NLIMITS] = {
	"Max cpu time", "Max file size", "Max data size", "Max stack size",
	"Max core file size", "Max resident set", "Max processes", "Max open files",
	"Max locked memory", "Max address space", "Max file locks", "Max pending signals",
	"Max msgqueue size", "Max nice priority", "Max realtime priority", "Max realtime timeout",
};

static uint64_t parse_limit(const char *s, char **end)
{
	while (*s == ' ')
		s++;
	if (!strncmp(s, "unlimited", 9)) {
		*end = (char *)s + 9;
		return RLIM_INFINITY;
	}
	return strtoull(s, end, 10);
}

/* One "Max open files            1024                 1048576              files" row. */
static int parse_row(const char *line, RlimitEntry *e)
{
	for (unsigned int r = 0; r < RLIM_NLIMITS; r++) {
		size_t len = strlen(limit_names[r]);
		char *end;

		if (strncmp(line, limit_names[r], len) || line[len] != ' ')
			continue;
		e->resource = r;
		e->cur = parse_limit(line + len, &end);
		e->max = parse_limit(end, &end);
		return 1;
	}
	return 0;
}

static int rlimits_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	char path[64], *buf, *line, *save = NULL;
	Rlimits *rl = xmalloc(sizeof(*rl));

	if (!rl)
		return -ENOMEM;
	rlimits__init(rl);
	rl->limits = xzalloc(RLIM_NLIMITS * sizeof(*rl->limits));
	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf || !rl->limits) {
		int err = pr_errno(-errno ?: -ENOMEM, "pid %d: cannot read %s", pid, path);

		free(buf);
		rlimits__free_unpacked(rl, NULL);
		return err;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		RlimitEntry *e = xmalloc(sizeof(*e));

		if (!e)
			break;
		rlimit_entry__init(e);
		if (parse_row(line, e))
			rl->limits[rl->n_limits++] = e;
		else
			free(e);
	}
	free(buf);
	*ret = &rl->base;
	return 0;
}

static int rlimits_restore_self(pid_t pid, const ProtobufCMessage *rec)
{
	const Rlimits *rl = (const Rlimits *)rec;

	for (size_t i = 0; i < rl->n_limits; i++) {
		const RlimitEntry *e = rl->limits[i];
		struct rlimit lim = { e->cur, e->max };

		if (e->resource >= RLIM_NLIMITS)
			continue;
		if (setrlimit(e->resource, &lim))
			return pr_errno(-errno, "pid %d: cannot restore the limit '%s' (soft %llu, hard %llu)%s",
					pid, limit_names[e->resource], (unsigned long long)e->cur,
					(unsigned long long)e->max,
					errno == EPERM ? ": raising it needs CAP_SYS_RESOURCE" : "");
	}
	return 0;
}

const struct task_kind task_kind_rlimits = {
	.name = "rlimits",
	.desc = &rlimits__descriptor,
	.dump = rlimits_dump,
	.restore_self = rlimits_restore_self,
};
