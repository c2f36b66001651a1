/*
 * Socket options for the socket kinds (inet, netlink): saving them with getsockopt(2) on our
 * copy of the description (which reads, never changes, the socket) and setting them again on
 * the socket made at restore.
 *
 * Integer options are described by tables of struct sockopt_int that point into the kind's own
 * protobuf message (an optional int32 field and its has_ flag), so adding an option is one
 * table line and one proto field. SOL_SOCKET options, shared by every kind, are in
 * sol_socket_opts (proto/sockopt.proto) and handled here as a whole.
 */
#ifndef CREST_FILES_SOCKOPT_H
#define CREST_FILES_SOCKOPT_H

#include <stddef.h>
#include <sys/types.h>

#include "sockopt.pb-c.h"

/* When, relative to bind(2), an option must be set at restore. */
enum sockopt_when {
	SOCKOPT_BEFORE_BIND,	/* it changes what bind accepts (SO_REUSEADDR, IPV6_V6ONLY) */
	SOCKOPT_AFTER_BIND,	/* everything else */
};

/* One integer option kept in an optional int32 field of a protobuf message. */
struct sockopt_int {
	const char *name;	/* "SO_REUSEADDR", for messages */
	int level, opt;		/* as given to getsockopt/setsockopt */
	size_t off;		/* offset of the int32_t field in the message */
	size_t has_off;		/* offset of its protobuf_c_boolean has_ flag */
	enum sockopt_when when;
};

#define SOCKOPT_INT(type, field, lvl, o, w) \
	{ #o, lvl, o, offsetof(type, field), offsetof(type, has_##field), w }

/* One option whose value is a byte string (IP_OPTIONS), kept in an optional bytes field. */
struct sockopt_bytes {
	const char *name;
	int level, opt;
	size_t off;		/* offset of the ProtobufCBinaryData field */
	size_t has_off;		/* offset of its has_ flag */
};

#define SOCKOPT_BYTES(type, field, lvl, o) \
	{ #o, lvl, o, offsetof(type, field), offsetof(type, has_##field) }

/*
 * Dump: reads every option of table t from socket sk into msg. An option the socket does not
 * have (ENOPROTOOPT, EOPNOTSUPP, EINVAL) leaves its field absent. what names the descriptor in
 * messages ("pid 12 fd 3"). Returns 0 or -errno after logging.
 */
int sockopt_dump_ints(int sk, const struct sockopt_int *t, size_t n, void *msg, const char *what);
/*
 * Restore: sets the options of table t that are due at `when` and present in msg, where the
 * fresh socket sk differs, and checks that the kernel kept the value. Returns 0 or -errno
 * after logging, naming what and the option.
 */
int sockopt_restore_ints(int sk, const struct sockopt_int *t, size_t n, const void *msg,
			 enum sockopt_when when, const char *what);

/*
 * Dump: checks that socket sk lives in crest's own network namespace, where sock_diag looks and
 * where restore recreates it (SO_NETNS_COOKIE, Linux 5.14). Logs and returns -EOPNOTSUPP if not.
 */
int sockopt_check_netns(int sk, const char *what);

/* Dump: the byte-string options of table t that are not empty (allocated, freed with msg). */
int sockopt_dump_bytes(int sk, const struct sockopt_bytes *t, size_t n, void *msg,
		       const char *what);
/* Restore (after bind): sets the byte-string options present in msg and checks them. */
int sockopt_restore_bytes(int sk, const struct sockopt_bytes *t, size_t n, const void *msg,
			  const char *what);

/*
 * Restore: after every option is set, checks that each option of table t present in msg still
 * has its saved value: setting one option can change another (IP_TOS sets SO_PRIORITY).
 */
int sockopt_verify_ints(int sk, const struct sockopt_int *t, size_t n, const void *msg,
			const char *what);

/* Dump: the SOL_SOCKET options of sk, newly allocated in *ret (freed with its parent record). */
int sockopt_dump_sol(int sk, SolSocketOpts **ret, const char *what);
/*
 * Restore: the SOL_SOCKET options of so due at `when`; after bind, also checks them all (set
 * them after the options of other levels, since those can change SOL_SOCKET ones).
 */
int sockopt_restore_sol(int sk, const SolSocketOpts *so, enum sockopt_when when, const char *what);

#endif
