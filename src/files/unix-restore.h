/*
 * "unix" at restore: what unix-restore.c (the sockets of the image, made and finished),
 * unix-refill.c (their receive queues) and unix-names.c (names, paths and temporary names)
 * share. Private to those three files.
 */
#ifndef CREST_FILES_UNIX_RESTORE_H
#define CREST_FILES_UNIX_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "files/unix.h"

/* One socket of the image while it is built. */
struct usk {
	UnixSk *rec;
	uint32_t id;		/* its file_entry id (a message may carry it, SCM_RIGHTS) */
	struct usk *peer;	/* UNIX_PEER_ALIVE: the peer's entry */
	int fd;			/* the socket; -1 before it is made and once handed out */
	int partner;		/* stand-in for a closed peer, connected to fd; closed at finish */
	bool paired;		/* connected to its peer (or stand-in) already */
	bool bound;		/* bound its own name, so it owns the socket file */
	bool external;		/* its peer or listener was outside the tree (--ext-unix-sk) */
};

/* A name to bind, connect or send to, and the directory a relative path is resolved in. */
struct uname {
	const uint8_t *name;
	size_t len;
	const char *dir;	/* NULL: absolute path, abstract name, or relative to the cwd */
};

/* ---- unix-restore.c ---- */

/* x's own name for messages ("unnamed" when it has none). */
const char *unix_sk_name(const struct usk *x, char buf[UNIX_NAME_STR]);
bool unix_same_name(const UnixAddr *a, const uint8_t *name, size_t len);
/* The datagram socket of the image that bound name itself, if any. */
struct usk *unix_find_dgram_named(const uint8_t *name, size_t len);
/*
 * Connects x to the name of its peer outside the tree (--ext-unix-sk); a name that no longer
 * answers leaves x disconnected, with a warning. Always 0.
 */
int unix_reconnect_external(struct usk *x);

/*
 * The descriptor of entry id for a message that carries it: a socket of the image, or another
 * description this process created before the sockets (fd_open_arg.entry_fd). -1 after logging.
 */
int unix_carried_fd(uint32_t id);

/* ---- unix-refill.c ---- */

/*
 * Puts x's receive queue back, in order. A datagram socket also connects to its peer (right
 * after the last datagram that came from someone else). 0 or -errno after logging.
 */
int unix_refill(struct usk *x);
/* Closes the temporary senders (a closed peer's stand-in goes with them). */
void unix_refill_cleanup(void);

/* ---- unix-names.c ---- */

bool unix_is_path(const struct uname *u);
struct uname unix_rec_uname(const UnixAddr *a);
/* Fills sa for u; returns the address length for bind/connect/sendto. */
socklen_t unix_make_sa(const struct uname *u, struct sockaddr_un *sa);
/* Enters u's directory when it is a relative path (*cwd: where to come back, or -1). */
int unix_enter_dir(const struct uname *u, int *cwd);
void unix_leave_dir(int cwd);

enum unix_name_op { UNIX_BIND, UNIX_CONNECT };
/* bind(2) or connect(2) fd to u, in u's directory. Returns 0 or -errno, without logging. */
int unix_name_call(int fd, const struct uname *u, enum unix_name_op op);
/* u's path as a string, and the directory descriptor it is relative to (or AT_FDCWD). */
int unix_path_at(const struct uname *u, char path[UNIX_NAME_MAX + 1], int *dfd);
/*
 * Makes u's path free for bind(2): removes a socket file nobody answers on (*existed then),
 * refuses anything else. 0 or -errno after logging.
 */
int unix_free_path(const struct uname *u, bool *existed);
/* The uname a temporary socket binds name with (relative paths go to a private directory). */
int unix_temp_uname(const uint8_t *name, size_t len, struct uname *ret);
/* Binds fd, a temporary socket, to name; see unix-names.c for what happens to its file. */
int unix_temp_bind(int fd, const uint8_t *name, size_t len, bool keep);
/* socket(2) of the type, O_CLOEXEC; the fd or -errno after logging. */
int unix_new_socket(uint32_t type);
/* Removes the files temporary sockets made, and the private directory. */
void unix_names_cleanup(void);

#endif
