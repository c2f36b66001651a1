/*
 * The O_ASYNC owner and signal of a file description (F_SETOWN_EX, F_SETSIG): saved and
 * restored by the kinds that recreate descriptions (reg, ghost, fifo, memfd). Other kinds can
 * call the same two functions; see fown.c for why O_ASYNC itself comes last.
 */
#ifndef CREST_FILES_FOWN_H
#define CREST_FILES_FOWN_H

#include <stdint.h>
#include <sys/types.h>

#include "fown.pb-c.h"

struct fd_dump_arg;

/*
 * Dump: the owner and signal of a's description, read through a->lfd (our copy shares the
 * description, so F_GETOWN_EX/F_GETSIG see the target's values and change nothing). *ret is
 * NULL when neither is set, else a malloc'ed record. Refuses an owner thread that is not a
 * thread-group leader (threads do not exist yet when descriptions are created).
 */
int fown_dump(const struct fd_dump_arg *a, FownState **ret);

/*
 * Restore, first thing after the description is created (before position and locks): sets
 * the owner and signal of fd, then switches O_ASYNC on with F_SETFL when flags has it. fd must
 * have been opened without O_ASYNC (reopen_flags()). Returns the descriptor to go on with: fd,
 * or for a file that has no ->fasync a new description of it opened with O_ASYNC (fd is then
 * closed); -errno after logging. what names the file in messages.
 */
int fown_restore(int fd, const FownState *fo, uint32_t flags, pid_t pid, const char *what);

#endif
