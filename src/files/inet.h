/*
 * Private to the "inet" kind (inet.c, inet-dump.c, inet-restore.c, inet-mcast.c, inet-diag.c):
 * TCP and UDP sockets over IPv4 and IPv6.
 */
#ifndef CREST_FILES_INET_H
#define CREST_FILES_INET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "files/sockopt.h"
#include "inet.pb-c.h"

struct inet_diag_msg;
struct fd_dump_arg;
struct fd_open_arg;

/* TCP states as the kernel numbers them (include/net/tcp_states.h); UDP uses 1 and 7 too. */
enum inet_tcp_state {
	INET_ESTABLISHED = 1,
	INET_SYN_SENT = 2,
	INET_SYN_RECV = 3,
	INET_CLOSE = 7,
	INET_LISTEN = 10,
	INET_NEW_SYN_RECV = 12,
};

/* Longest TCP congestion control name (TCP_CA_NAME_MAX in include/net/tcp.h). */
#define INET_CA_NAME_MAX 16

/* The option tables (inet.c), one per level; each names fields of InetSkOpts. */
extern const struct sockopt_int inet_ip_opts[];
extern const size_t inet_nr_ip_opts;
extern const struct sockopt_int inet_ipv6_opts[];
extern const size_t inet_nr_ipv6_opts;
extern const struct sockopt_int inet_tcp_opts[];
extern const size_t inet_nr_tcp_opts;
extern const struct sockopt_int inet_udp_opts[];
extern const size_t inet_nr_udp_opts;

extern const struct sockopt_bytes inet_ip_bytes[];
extern const size_t inet_nr_ip_bytes;
extern const struct sockopt_bytes inet_ipv6_bytes[];
extern const size_t inet_nr_ipv6_bytes;

/* "TCP" or "UDP", and a TCP state's name ("ESTABLISHED"), for messages. */
const char *inet_proto_name(uint32_t protocol);
const char *inet_state_name(uint32_t state);
/* "127.0.0.1:80", "[::1]:80" or "*:80" of a saved address, for messages. */
void inet_addr_str(const InetSkAddr *a, char *buf, size_t len);

/* inet-dump.c, inet-restore.c */
int inet_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret);
int inet_open(const struct fd_open_arg *a, const ProtobufCMessage *rec);

/*
 * inet-closed.c: makes fd, a fresh TCP socket, a connection reset by its peer (dump
 * --tcp-close), from the local address of is where this machine has it.
 */
int inet_closed_restore(int fd, const InetSocket *is, const char *what);

/* inet-mcast.c: the multicast groups a UDP socket joined (into is->mcast), and joining again. */
int inet_mcast_dump(int lfd, InetSocket *is, const char *what);
int inet_mcast_restore(int fd, const InetSocket *is, const char *what);

/* inet-diag.c: sock_diag (NETLINK_SOCK_DIAG) queries, in crest's network namespace. */
struct inet_diag_sk {
	const struct inet_diag_msg *msg;
	int shutdown;		/* INET_DIAG_SHUTDOWN (RCV 1, SEND 2), -1 when not reported */
};
/*
 * Calls cb for each socket of family and protocol whose state is in the mask states
 * (1 << INET_*), until cb returns nonzero. Returns what cb returned, 0 when it never did, or
 * -errno (-ENOENT when the kernel has no diag module for the protocol).
 */
int inet_diag_walk(int family, int protocol, uint32_t states,
		   int (*cb)(const struct inet_diag_sk *sk, void *arg), void *arg);

#endif
