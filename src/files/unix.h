/*
 * "unix": AF_UNIX sockets. Private to the kind's files:
 *
 *   unix.c          the fd_kind, and why all unix sockets are one restore group
 *   unix-dump.c     sock_diag tells each socket's type, state, name, peer, pending
 *                   connections and shutdown bits; the receive queue is read with MSG_PEEK
 *                   through our copy of the description, walked with SO_PEEK_OFF, so the live
 *                   socket keeps every byte. Descriptors in flight (SCM_RIGHTS) go to the fd
 *                   table as descriptions of their own (fd_dump_arg.save_carried). A peer
 *                   outside the dumped tree, a unix socket in flight that carries descriptors
 *                   itself, out-of-band data and unaccepted connections whose data cannot be
 *                   read fail the dump.
 *   unix-restore.c  one process creates every unix socket of the image together, in an order
 *                   that brings connections, names and queues back exactly; the others take
 *                   their copies as for any shared description (unix-restore.h)
 *   unix-refill.c   the receive queues, message by message, with the descriptors in flight
 *   unix-names.c    names and socket files: relative paths, stale files, temporary names
 */
#ifndef CREST_FILES_UNIX_H
#define CREST_FILES_UNIX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "files/files.h"
#include "unix.pb-c.h"

/* sizeof(sun_path): the longest name, path or abstract. */
#define UNIX_NAME_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path))
/* Room for unix_name_str's result: every byte escaped, "@" and the NUL. */
#define UNIX_NAME_STR (4 * UNIX_NAME_MAX + 2)
/* The kernel's SCM_MAX_FD (include/net/scm.h): the most descriptors one message carries. */
#define UNIX_SCM_MAX_FD 253

/*
 * A name as bytes for messages: "/path", "@abstract" (NULs and other unprintable bytes as
 * \xNN), "unnamed" when len is 0. Returns buf.
 */
const char *unix_name_str(const uint8_t *name, size_t len, char buf[UNIX_NAME_STR]);
/* The same for an address record (NULL: "unnamed"). */
const char *unix_addr_str(const UnixAddr *addr, char buf[UNIX_NAME_STR]);

bool unix_match(const struct fd_dump_arg *a);
int unix_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret);
int unix_dump_finish(struct img_dir *dir, bool complete);
int unix_open(const struct fd_open_arg *a, const ProtobufCMessage *rec);

#endif
