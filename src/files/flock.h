/*
 * File locks of the descriptors crest reopens by path or recreates (reg, ghost, fifo, memfd):
 * saved with the description's record, taken again at restore. flock(2) and OFD locks belong
 * to the open file description and are taken when it is created; POSIX record locks belong to
 * a process and are taken by that process once its fd table is installed (restore_late).
 */
#ifndef CREST_FILES_FLOCK_H
#define CREST_FILES_FLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flock.pb-c.h"

struct fd_dump_arg;

/*
 * One lock line, from fdinfo ("lock:\t1: POSIX  ADVISORY  WRITE 412 fe:00:1234 10 29") or
 * /proc/locks (the same without "lock:\t"; waiters are shown as "1: -> POSIX ...").
 */
struct flock_line {
	char cls[8];		/* FLOCK, POSIX, OFDLCK, LEASE, DELEG, ACCESS, UNKNOWN */
	bool blocked;		/* "->": a request waiting for the lock, not a lock held */
	bool write;		/* WRITE; else READ (or UNLCK, for a lease being broken) */
	int pid;		/* owner's tgid (-1 for OFD locks) */
	unsigned int maj, min;	/* the inode's superblock device */
	uint64_t ino;
	uint64_t start;		/* first byte; 0 for flock */
	uint64_t end;		/* last byte, when !to_eof */
	bool to_eof;		/* "EOF": up to the end of the file, whatever it becomes */
};

/* Parses one line; 0, or -EINVAL when it does not have the shape above. */
int flock_parse_line(const char *line, struct flock_line *ret);

/*
 * Dump: the locks to restore with description a: its flock and OFD locks (fdinfo), and every
 * process's POSIX locks on the inode that this description's access mode could have taken
 * (/proc/locks). Leases and delegations are refused. *ret is a malloc'ed array of malloc'ed
 * records (protobuf-c frees them with the record that holds them).
 */
int flock_dump(const struct fd_dump_arg *a, FileLock ***ret, size_t *ret_nr);

/* Restore, where the description is created: its flock and OFD locks. */
int flock_restore_desc(int fd, FileLock *const *locks, size_t nr, pid_t pid, const char *what);

/* Restore, late, in process pid: the POSIX locks that pid held on the inode. */
int flock_restore_posix(int fd, FileLock *const *locks, size_t nr, pid_t pid, const char *what);

#endif
