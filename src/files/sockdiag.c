/*
 * sock_diag queries: one netlink socket per query, a request, and a walk over the replies until
 * NLMSG_DONE (dump) or the single answer (exact lookup). See sockdiag.h.
 */
#define LOG_PREFIX "files/sockdiag: "
#include "files/sockdiag.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

static int send_request(int nl, const void *req, size_t len, bool dump)
{
	struct nlmsghdr h = {
		.nlmsg_len = NLMSG_LENGTH(len),
		.nlmsg_type = SOCK_DIAG_BY_FAMILY,
		.nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : 0),
		.nlmsg_seq = 1,
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct iovec iov[2] = { { &h, NLMSG_HDRLEN }, { (void *)req, len } };
	struct msghdr msg = {
		.msg_name = &kernel, .msg_namelen = sizeof(kernel), .msg_iov = iov, .msg_iovlen = 2,
	};

	if (sendmsg(nl, &msg, 0) < 0)
		return pr_errno(-errno, "cannot send a sock_diag request");
	return 0;
}

/*
 * Receives the next reply datagram whole: MSG_PEEK|MSG_TRUNC gives its real size first (an exact
 * lookup of a listener with many pending connections can exceed any fixed buffer).
 */
static ssize_t recv_reply(int nl, char **buf, size_t *cap)
{
	ssize_t n;

	do
		n = recv(nl, NULL, 0, MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return pr_errno(-errno, "cannot receive a sock_diag reply");
	if ((size_t)n > *cap) {
		char *bigger = xrealloc(*buf, n);

		if (!bigger)
			return -ENOMEM;
		*buf = bigger;
		*cap = n;
	}
	do
		n = recv(nl, *buf, *cap, 0);
	while (n < 0 && errno == EINTR);
	return n < 0 ? pr_errno(-errno, "cannot receive a sock_diag reply") : n;
}

/*
 * Walks one datagram of replies; *done once the answer is complete. Returns 0, the kernel's
 * error, or cb's nonzero value (which also ends the walk).
 */
static int walk_replies(char *buf, ssize_t n, bool dump, sockdiag_cb cb, void *arg, bool *done)
{
	*done = true;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
		int ret;

		if (h->nlmsg_type == NLMSG_DONE)
			return 0;
		if (h->nlmsg_type == NLMSG_ERROR)
			return ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
		ret = cb(h, arg);
		if (ret)
			return ret;
	}
	/* an exact lookup answers with one message and no NLMSG_DONE */
	*done = !dump;
	return 0;
}

int sockdiag_query(const void *req, size_t len, bool dump, sockdiag_cb cb, void *arg)
{
	_cleanup_close_ int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	_cleanup_free_ char *buf = NULL;
	bool done = false;
	size_t cap = 0;
	int ret;

	if (nl < 0)
		return pr_errno(-errno, "cannot open a NETLINK_SOCK_DIAG socket");
	ret = send_request(nl, req, len, dump);
	while (!ret && !done) {
		ssize_t n = recv_reply(nl, &buf, &cap);

		if (n < 0)
			return n;
		if (n == 0)
			return pr_errno(-EPIPE, "sock_diag reply ended early");
		ret = walk_replies(buf, n, dump, cb, arg, &done);
	}
	return ret;
}

void sockdiag_attrs(const struct nlmsghdr *h, size_t hdr_len, const struct rtattr **tb, int max)
{
	const struct rtattr *a = (const struct rtattr *)((const char *)NLMSG_DATA(h) +
							 NLMSG_ALIGN(hdr_len));
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(hdr_len);

	memset(tb, 0, (max + 1) * sizeof(*tb));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type <= max)
			tb[a->rta_type] = a;
}
