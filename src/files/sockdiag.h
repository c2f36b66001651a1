/*
 * sock_diag (NETLINK_SOCK_DIAG, linux/sock_diag.h): the kernel's read-only view of sockets by
 * family. Asking it changes nothing about the sockets, so a dump may use it freely. One helper
 * for every socket kind: the caller builds its family's request (struct unix_diag_req,
 * struct inet_diag_req_v2, ...) and walks the replies.
 *
 * The query runs in the network namespace of the calling process, which must be the one of the
 * sockets asked about.
 */
#ifndef CREST_FILES_SOCKDIAG_H
#define CREST_FILES_SOCKDIAG_H

#include <stdbool.h>
#include <stddef.h>

struct nlmsghdr;
struct rtattr;

/*
 * Called for each reply message h (of type SOCK_DIAG_BY_FAMILY; the family's *_diag_msg is
 * NLMSG_DATA(h)). A nonzero return stops the walk and becomes sockdiag_query's result.
 */
typedef int (*sockdiag_cb)(const struct nlmsghdr *h, void *arg);

/*
 * Sends one SOCK_DIAG_BY_FAMILY request whose body is req (len bytes: the family's request
 * struct) and calls cb for every reply. dump: NLM_F_DUMP, every socket the request matches;
 * otherwise an exact lookup (unix: by udiag_ino; inet: by the id), which yields one reply.
 * Returns 0, cb's nonzero value, or -errno: the kernel's own error for the request
 * (-ENOENT: no such socket) or a local failure. Logs only local failures: a missing socket is
 * the caller's to judge.
 */
int sockdiag_query(const void *req, size_t len, bool dump, sockdiag_cb cb, void *arg);

/*
 * Indexes the attributes that follow the hdr_len-byte family header of h: tb[type] points to
 * the attribute of that type for type <= max, or is NULL when the kernel sent none.
 */
void sockdiag_attrs(const struct nlmsghdr *h, size_t hdr_len, const struct rtattr **tb, int max);

#endif
