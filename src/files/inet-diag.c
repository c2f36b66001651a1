/*
 * sock_diag for the "inet" kind: what getsockopt cannot tell about a TCP or UDP socket.
 *
 * A SOCK_DIAG_BY_FAMILY dump (struct inet_diag_req_v2, NLM_F_DUMP) lists the sockets of one
 * family and protocol in the network namespace of the asking socket (crest's: the dump checks
 * first that the target's socket lives there). Each reply is a struct inet_diag_msg followed by
 * attributes; INET_DIAG_SHUTDOWN (the u8 sk_shutdown) comes with every socket since Linux 3.7.
 * Request sockets of half-open or deferred connections (TCP_NEW_SYN_RECV inside the kernel)
 * are reported in state SYN_RECV. Sockets that are in no hash table (never bound) are not
 * listed at all.
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

#define DIAG_BUF_SIZE 32768

static int diag_request(int nl, int family, int protocol, uint32_t states)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.r = { .sdiag_family = family, .sdiag_protocol = protocol,
		       .idiag_states = states },
	};

	return send(nl, &req, sizeof(req), 0) == sizeof(req) ? 0 : -errno;
}

static int shutdown_attr(const struct nlmsghdr *nlh)
{
	const struct inet_diag_msg *m = NLMSG_DATA(nlh);
	int len = nlh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));

	for (const struct rtattr *rta = (const void *)(m + 1); RTA_OK(rta, len);
	     rta = RTA_NEXT(rta, len))
		if (rta->rta_type == INET_DIAG_SHUTDOWN && RTA_PAYLOAD(rta) >= 1)
			return *(const uint8_t *)RTA_DATA(rta);
	return -1;
}

/* One datagram of replies: 1 at NLMSG_DONE, what cb said if it stopped, or -errno. */
static int diag_batch(const void *buf, ssize_t len,
		      int (*cb)(const struct inet_diag_sk *sk, void *arg), void *arg)
{
	for (const struct nlmsghdr *nlh = buf; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
		struct inet_diag_sk sk;
		int ret;

		if (nlh->nlmsg_type == NLMSG_DONE)
			return 1;
		if (nlh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(nlh);

			return e->error ? e->error : -EIO;
		}
		if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
		    nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
			continue;
		sk.msg = NLMSG_DATA(nlh);
		sk.shutdown = shutdown_attr(nlh);
		ret = cb(&sk, arg);
		if (ret)
			return ret < 0 ? ret : ret + 1;
	}
	return 0;
}

int inet_diag_walk(int family, int protocol, uint32_t states,
		   int (*cb)(const struct inet_diag_sk *sk, void *arg), void *arg)
{
	_cleanup_close_ int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	_cleanup_free_ char *buf = xmalloc(DIAG_BUF_SIZE);
	int ret;

	if (nl < 0 || !buf)
		return nl < 0 ? pr_errno(-errno, "cannot open a sock_diag socket") : -ENOMEM;
	ret = diag_request(nl, family, protocol, states);
	while (!ret) {
		ssize_t n = recv(nl, buf, DIAG_BUF_SIZE, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		ret = diag_batch(buf, n, cb, arg);
	}
	/* diag_batch: 1 is the end of the dump, 1 + r is cb's r */
	return ret < 0 ? ret : ret - 1;
}
