/*
 * netlink: netlink sockets come back bound to the same port ids, in the same multicast groups,
 * with their options, filter and file flags, and they still talk to the kernel.
 *
 *   fd 40  NETLINK_ROUTE bound with nl_pid 0 (the kernel gives the process's pid) and
 *          RTMGRP_LINK, also in group RTNLGRP_BRVLAN (33, beyond getsockname's 32 bits);
 *          NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_NO_ENOBUFS, SO_RCVBUF past
 *          rmem_max, a classic BPF filter, O_NONBLOCK
 *   fd 41  NETLINK_ROUTE bound to a port id of the case's choosing
 *   fd 42  NETLINK_GENERIC never bound, NETLINK_CAP_ACK, FD_CLOEXEC
 *   fd 43  NETLINK_ROUTE bound second with nl_pid 0 (the kernel gives a negative port id)
 *
 * After SIGTERM: getsockname, the group list (NETLINK_LIST_MEMBERSHIPS), the options and the
 * filter length are compared with "ready"; then fd 40 and fd 43 each dump the links
 * (RTM_GETLINK) and must get answers addressed to their own port ids, ending in NLMSG_DONE.
 */
#include "case.h"

#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

static const struct case_sockopt opts[] = {
	CASE_SOCKOPT(SOL_SOCKET, SO_RCVBUF), CASE_SOCKOPT(SOL_SOCKET, SO_SNDBUF),
	CASE_SOCKOPT(SOL_SOCKET, SO_PROTOCOL), CASE_SOCKOPT(SOL_SOCKET, SO_TYPE),
	CASE_SOCKOPT(SOL_NETLINK, NETLINK_EXT_ACK),
	CASE_SOCKOPT(SOL_NETLINK, NETLINK_GET_STRICT_CHK),
	CASE_SOCKOPT(SOL_NETLINK, NETLINK_NO_ENOBUFS),
	CASE_SOCKOPT(SOL_NETLINK, NETLINK_CAP_ACK),
	CASE_SOCKOPT(SOL_NETLINK, NETLINK_PKTINFO),
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))
#define NWORDS 4

struct sk {
	int fd;
	const char *name;
	struct case_sockstate st;	/* the options above, the file flags */
	struct sockaddr_nl local;
	uint32_t groups[NWORDS];
	socklen_t filter_len;	/* SO_GET_FILTER: instructions */
};

static struct sk sks[] = {
	{ 40, "route, autobound" }, { 41, "route, chosen port id" }, { 42, "generic, unbound" },
	{ 43, "route, second autobound" },
};
#define NSKS (sizeof(sks) / sizeof(sks[0]))

static void do_bind(int fd, uint32_t portid, uint32_t groups)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_pid = portid, .nl_groups = groups };

	if (bind(fd, (struct sockaddr *)&nl, sizeof(nl)))
		case_die("fd %d: bind to port id %u groups %#x: %m", fd, portid, groups);
}

static void setup(void)
{
	/* accept everything: ret #0xffffffff */
	static struct sock_filter accept_all[] = { { BPF_RET | BPF_K, 0, 0, 0xffffffff } };
	struct sock_fprog prog = { 1, accept_all };
	int fd = case_socket_at(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 40), big = 1 << 22;

	do_bind(fd, 0, RTMGRP_LINK);
	case_set_int(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_BRVLAN);
	case_set_int(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
	case_set_int(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
	case_set_int(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
	case_set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, big);
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ||
	    fcntl(fd, F_SETFL, O_NONBLOCK))
		case_die("fd 40: filter or flags: %m");

	fd = case_socket_at(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 41);
	do_bind(fd, 0x7e000000u | (getpid() & 0xffffff), 0);
	fd = case_socket_at(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC, 42);
	case_set_int(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	do_bind(case_socket_at(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 43), 0, 0);
}

static void read_state(int fd, struct sk *r)
{
	socklen_t len;

	case_sockstate_read(fd, opts, NOPTS, &r->st);
	memset(&r->local, 0, sizeof(r->local));
	len = sizeof(r->local);
	getsockname(fd, (struct sockaddr *)&r->local, &len);
	memset(r->groups, 0, sizeof(r->groups));
	len = sizeof(r->groups);
	getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, r->groups, &len);
	r->filter_len = 0;
	getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &r->filter_len);
}

static void check_sk(const struct sk *want)
{
	struct sk now;

	if (!case_check_open(want->name, want->fd))
		return;
	read_state(want->fd, &now);
	case_sockstate_check(want->name, want->fd, opts, NOPTS, &now.st, &want->st);
	case_check(now.local.nl_pid == want->local.nl_pid &&
		   now.local.nl_groups == want->local.nl_groups,
		   "%s (fd %d): port id %u groups %#x, want %u and %#x", want->name, want->fd,
		   now.local.nl_pid, now.local.nl_groups, want->local.nl_pid, want->local.nl_groups);
	for (int w = 0; w < NWORDS; w++)
		case_check(now.groups[w] == want->groups[w],
			   "%s (fd %d): groups %d-%d are %#x, want %#x", want->name, want->fd,
			   w * 32 + 1, w * 32 + 32, now.groups[w], want->groups[w]);
	case_check(now.filter_len == want->filter_len,
		   "%s (fd %d): filter of %u instructions, want %u", want->name, want->fd,
		   now.filter_len, want->filter_len);
}

/* Reads replies to request seq until NLMSG_DONE; returns the number of links, or -1. */
static int read_links(const struct sk *s, uint32_t seq)
{
	static char buf[65536];
	int links = 0;

	for (;;) {
		ssize_t n;

		if (!case_poll(s->fd, POLLIN, 3000))
			return -1;
		n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return -1;
		for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq)
				continue;	/* a link event from RTMGRP_LINK */
			case_check(h->nlmsg_pid == s->local.nl_pid,
				   "%s: a reply went to port id %u, want %u", s->name, h->nlmsg_pid,
				   s->local.nl_pid);
			if (h->nlmsg_type == NLMSG_DONE)
				return links;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			links += h->nlmsg_type == RTM_NEWLINK;
		}
	}
}

static void dump_links(const struct sk *s, uint32_t seq)
{
	struct {
		struct nlmsghdr nlh;
		struct ifinfomsg ifi;
	} req = {
		.nlh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = seq },
		.ifi = { .ifi_family = AF_UNSPEC },
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int links;

	if (sendto(s->fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		case_fail("%s (fd %d): RTM_GETLINK: %m", s->name, s->fd);
		return;
	}
	links = read_links(s, seq);
	case_check(links > 0, "%s (fd %d): the RTM_GETLINK dump gave %d links", s->name, s->fd,
		   links);
}

static void sabotage(void)
{
	int v = RTNLGRP_BRVLAN;

	if (case_sabotage("group"))
		setsockopt(40, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &v, sizeof(v));
	if (case_sabotage("portid"))
		dup2(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 41);
	if (case_sabotage("filter"))
		setsockopt(40, SOL_SOCKET, SO_DETACH_FILTER, &v, sizeof(v));
	v = 0;
	if (case_sabotage("strict_chk"))
		setsockopt(40, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &v, sizeof(v));
	if (case_sabotage("protocol"))
		dup2(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 42);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	for (size_t i = 0; i < NSKS; i++)
		read_state(sks[i].fd, &sks[i]);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NSKS; i++)
		check_sk(&sks[i]);
	dump_links(&sks[0], 1001);
	dump_links(&sks[3], 1002);
	case_finish();
}
