/*
 * Pseudo-terminal pairs inside the tree: the part of the "tty" kind (files/tty.c) that saves
 * and recreates a pty master (/dev/ptmx), its slave (/dev/pts/N) and the pair's state. Private
 * to files/tty.c and files/pty-*.c.
 *
 * A pair is named by its index N: TIOCGPTN on the master, the minor of the slave's device.
 * Whether a slave's master is inside the tree depends on the other processes: the dump finds
 * out from /proc (pty-tree.c) and says so in the slave's record.
 */
#ifndef CREST_FILES_PTY_H
#define CREST_FILES_PTY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include "tty.pb-c.h"

struct fd_dump_arg;
struct fd_open_arg;
struct img_dir;

/*
 * Unix98 pty slaves are character devices of major 136 (the driver reserves 136-143), minor
 * the index; the master is always /dev/ptmx, 5:2, whichever pair it opened.
 */
#define PTY_SLAVE_MAJOR 136
#define PTY_SLAVE_MAJORS 8
#define PTMX_MAJOR 5
#define PTMX_MINOR 2

static inline bool pty_is_slave(dev_t rdev)
{
	return major(rdev) >= PTY_SLAVE_MAJOR && major(rdev) < PTY_SLAVE_MAJOR + PTY_SLAVE_MAJORS;
}

static inline bool pty_is_master(dev_t rdev)
{
	return major(rdev) == PTMX_MAJOR && minor(rdev) == PTMX_MINOR;
}

/* The index of a slave device (dev_t minors have 20 bits). */
static inline uint32_t pty_slave_index(dev_t rdev)
{
	return ((major(rdev) - PTY_SLAVE_MAJOR) << 20) | minor(rdev);
}

static inline dev_t pty_slave_dev(uint32_t index)
{
	return makedev(PTY_SLAVE_MAJOR + (index >> 20), index & 0xfffff);
}

/* ---- dump (pty-dump.c) ---- */
/* Fills te->index and te->pty from the master a->lfd; refuses what cannot be saved. */
int pty_dump_master(const struct fd_dump_arg *a, TtyEnd *te);
/* Fills te->index and te->slave; refuses a shell job's terminal without --shell-job. */
int pty_dump_slave(const struct fd_dump_arg *a, TtyEnd *te);

/* ---- the tree as the terminals see it, read from /proc once per dump (pty-tree.c) ---- */
/* Whether a process of the tree holds the master of pair index. */
int pty_tree_has_master(uint32_t index, bool *ret);
/* The session (its leader in the tree) with slave index as controlling terminal, or 0s. */
int pty_tree_session(uint32_t index, pid_t *sid, pid_t *pgrp);
/* Refuses a session on slave index that cannot be given its terminal back at restore. */
int pty_tree_check_session(const struct fd_dump_arg *a, uint32_t index, pid_t sid);
/* Refuses a pair that a process outside the tree holds an end of. */
int pty_tree_check_outside(const struct fd_dump_arg *a, uint32_t index);
/*
 * The processes of session sid in the tree, but its leader, without /dev/pts/index as
 * controlling terminal (*ret malloc'ed).
 */
int pty_tree_no_ctty(uint32_t index, pid_t sid, int32_t **ret, size_t *nr);
/* Whether the controlling terminal of pid (in the tree) is a slave of a pair inside it. */
int pty_tree_ctty_inside(pid_t pid, uint32_t *index, bool *ret);
/* End of a dump: forgets what was read. */
void pty_tree_forget(void);

/* ---- restore (pty-restore.c) ---- */
/* The controller: makes every pair before the tree exists; lets them go once it does. */
int pty_restore_prepare(struct img_dir *dir);
void pty_restore_release(void);
/* Each process, before its children: the leader takes the terminal, members without it drop it. */
int pty_restore_session(pid_t pid);
/* Makes (first call: every pair of the image, from files.img) and returns one end. */
int pty_restore_open(const struct fd_open_arg *a, const TtyEnd *te);
/* In the leader of a session whose controlling terminal was the slave: makes it so again. */
int pty_restore_late(const struct fd_open_arg *a, const TtyEnd *te, int fd);

#endif
