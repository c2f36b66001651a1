/* Small helpers shared by the kinds that reopen or recreate files (reg, ghost, fifo, memfd). */
#ifndef CREST_FILES_REOPEN_H
#define CREST_FILES_REOPEN_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "util/util.h"

#define DELETED_SUFFIX " (deleted)"

/*
 * open(2) flags that recreate a description with saved status flags: close-on-exec (it starts
 * as a service fd), no creation flags, and no O_ASYNC: open(2) stores FASYNC in f_flags but
 * never calls the file's ->fasync, so only F_SETFL turns it on for real (fown_restore). No
 * O_NOFOLLOW either (shm_open(3) opens with it, and f_flags keeps it): reopening through the
 * magic link /proc/self/fd/N with it fails with ELOOP.
 */
static inline int reopen_flags(uint32_t flags)
{
	return (int)(flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_ASYNC | O_NOFOLLOW)) |
	       O_CLOEXEC;
}

/* The kernel appends " (deleted)" to the path of an unlinked dentry (d_path). */
static inline bool link_is_deleted(const char *link)
{
	size_t len = strlen(link), slen = strlen(DELETED_SUFFIX);

	return len > slen && !strcmp(link + len - slen, DELETED_SUFFIX);
}

/* "/memfd:NAME (deleted)": the name memfd_create(2) gives its file (S_ISREG, on shmem). */
static inline bool link_is_memfd(const char *link)
{
	return !strncmp(link, "/memfd:", 7) && link_is_deleted(link);
}

/* The thread-group id of tid (/proc/TID/status "Tgid:"), or -errno. */
static inline int tid_tgid(pid_t tid)
{
	char path[64], *buf, *p;
	int tgid;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	p = strstr(buf, "\nTgid:");
	tgid = p ? atoi(p + 6) : -ENOENT;
	free(buf);
	return tgid;
}

/*
 * A new description of the file behind our fd: opening /proc/self/fd/N follows the magic link
 * to the very inode and path, even an unlinked one.
 */
static inline int reopen_fd(int fd, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, flags);
}

#endif
