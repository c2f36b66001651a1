/*
 * Namespaces. Until crest recreates them, a tree must share every namespace with crest: a
 * restore would otherwise put it back into crest's, silently changing what it sees.
 */
#define LOG_PREFIX "ns: "
#include "ns/ns.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "util/log.h"
#include "util/util.h"

static const char *const ns_names[] = {
	"pid", "net", "ipc", "uts", "mnt", "user", "cgroup", "time",
};

int ns_check_dumpable(pid_t pid)
{
	for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++) {
		char path[64], self[64];
		struct stat st, self_st;

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns_names[i]);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", ns_names[i]);
		if (stat(self, &self_st))
			continue;	/* the kernel lacks this kind of namespace */
		if (stat(path, &st))
			return pr_errno(-errno, "pid %d: cannot inspect %s", pid, path);
		if (st.st_ino != self_st.st_ino || st.st_dev != self_st.st_dev) {
			pr_err("pid %d: lives in its own %s namespace, which crest cannot checkpoint yet",
			       pid, ns_names[i]);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}
