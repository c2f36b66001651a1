/*
 * inet_udp: UDP sockets come back bound to the same address and port, connected to the same
 * peer, with their options and file flags, and datagrams flow between them afterwards.
 *
 *   fd 30  UDP v4 bound to 127.0.0.1:<ephemeral>: SO_REUSEADDR, SO_BROADCAST, IP_PKTINFO,
 *          IP_TOS, IP_TTL, SO_RCVBUF and SO_SNDBUF, SO_PRIORITY set after IP_TOS, IP_OPTIONS
 *   fd 31  UDP v4 connected to fd 30 without bind (the kernel picked its port), O_NONBLOCK
 *   fd 32  UDP v6 bound to [::1]:<ephemeral>: IPV6_V6ONLY, IPV6_RECVPKTINFO,
 *          IPV6_UNICAST_HOPS, SO_RCVTIMEO, FD_CLOEXEC
 *   fd 33  UDP v6 bound to [::1]:<ephemeral> and connected to fd 32, SO_REUSEPORT, a sticky
 *          destination options header (IPV6_DSTOPTS)
 *   fd 34  UDP v4 never bound nor connected, O_NONBLOCK
 *   fd 35  UDP v4 connected to fd 30, then shutdown(SHUT_WR): sending fails with EPIPE
 *   fd 36  UDP v4 bound to *:<ephemeral>, in multicast group 239.1.2.3 on lo with source
 *          10.9.9.9 blocked, and in 232.1.1.1 from source 127.0.0.1 only
 *   fd 37  UDP v4 multicast sender: IP_MULTICAST_IF 127.0.0.1, IP_MULTICAST_TTL 3
 *   (fd 32 is also in IPv6 group ff15::abcd on lo)
 *
 * After SIGTERM: the options and addresses are compared with those read at "ready"; fd 31
 * and fd 33 exchange a datagram each way with their peers, and each peer sees the datagram
 * come from the connected socket's address; a datagram sent to fd 31 from elsewhere is
 * dropped (it is still connected); fd 34 can send; the memberships and their source filters
 * are the same, and a datagram fd 37 sends to 239.1.2.3 reaches fd 36.
 */
#include "case.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

static const struct case_sockopt opts[] = {
	CASE_SOCKOPTS_INET,
	CASE_SOCKOPT(SOL_SOCKET, SO_PRIORITY), CASE_SOCKOPT(SOL_IP, IP_PKTINFO),
	CASE_SOCKOPT(SOL_IPV6, IPV6_RECVPKTINFO),
	CASE_SOCKOPT(SOL_IP, IP_MULTICAST_IF), CASE_SOCKOPT(SOL_IP, IP_MULTICAST_TTL),
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

struct sk {
	int fd;
	const char *name;
	struct case_sockstate st;	/* the options above, the file flags */
	uint8_t ipopts[64], dstopts[64];	/* IP_OPTIONS, IPV6_DSTOPTS */
	socklen_t ipopts_len, dstopts_len;
	struct sockaddr_storage local, peer;
	socklen_t local_len, peer_len;
	struct timeval rcvtimeo;
};

static struct sk sks[] = {
	{ 30, "v4 bound" }, { 31, "v4 connected" }, { 32, "v6 bound" }, { 33, "v6 connected" },
	{ 34, "v4 unbound" }, { 35, "v4 shut down" }, { 36, "v4 multicast member" },
	{ 37, "v4 multicast sender" },
};
#define NSKS (sizeof(sks) / sizeof(sks[0]))

/* Connects fd to where target is bound. */
static void do_connect(int fd, int target)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(target, (struct sockaddr *)&ss, &len) ||
	    connect(fd, (struct sockaddr *)&ss, len))
		case_die("fd %d: connect to fd %d: %m", fd, target);
}

static void setup(void)
{
	struct timeval tv = { 3, 0 };
	int fd = case_socket_at(AF_INET, SOCK_DGRAM, 0, 30);

	case_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	case_inet_bind(fd, AF_INET, false);
	case_set_int(fd, SOL_SOCKET, SO_BROADCAST, 1);
	case_set_int(fd, SOL_IP, IP_PKTINFO, 1);
	case_set_int(fd, SOL_IP, IP_TOS, 0x08);
	case_set_int(fd, SOL_SOCKET, SO_PRIORITY, 3);
	case_set_int(fd, SOL_IP, IP_TTL, 99);
	case_set_int(fd, SOL_SOCKET, SO_RCVBUF, 50000);
	case_set_int(fd, SOL_SOCKET, SO_SNDBUF, 60000);
	/* four no-operation options */
	if (setsockopt(fd, SOL_IP, IP_OPTIONS, "\x01\x01\x01\x01", 4))
		case_die("fd 30: IP_OPTIONS: %m");

	do_connect(case_socket_at(AF_INET, SOCK_DGRAM, 0, 31), 30);
	fcntl(31, F_SETFL, O_NONBLOCK);

	fd = case_socket_at(AF_INET6, SOCK_DGRAM, 0, 32);
	case_set_int(fd, SOL_IPV6, IPV6_V6ONLY, 1);
	case_inet_bind(fd, AF_INET6, false);
	case_set_int(fd, SOL_IPV6, IPV6_RECVPKTINFO, 1);
	case_set_int(fd, SOL_IPV6, IPV6_UNICAST_HOPS, 9);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) || fcntl(fd, F_SETFD, FD_CLOEXEC))
		case_die("fd 32: %m");

	fd = case_socket_at(AF_INET6, SOCK_DGRAM, 0, 33);
	case_set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	case_inet_bind(fd, AF_INET6, false);
	do_connect(fd, 32);
	/* next header (the kernel fills it in), length 0 (8 bytes), PadN of 4 bytes */
	if (setsockopt(fd, SOL_IPV6, IPV6_DSTOPTS, "\x00\x00\x01\x04\x00\x00\x00\x00", 8))
		case_die("fd 33: IPV6_DSTOPTS: %m");

	fcntl(case_socket_at(AF_INET, SOCK_DGRAM, 0, 34), F_SETFL, O_NONBLOCK);
	do_connect(case_socket_at(AF_INET, SOCK_DGRAM, 0, 35), 30);
	if (shutdown(35, SHUT_WR))
		case_die("fd 35: shutdown: %m");
}

static ssize_t recv_one(int fd, char *buf, size_t len, struct sockaddr_storage *from,
			socklen_t *flen);

/* A multicast membership and its source filter as MCAST_MSFILTER reads it. */
struct mc {
	int fd, family;
	const char *group;
	uint32_t fmode, numsrc;
	struct sockaddr_storage src;	/* the first source */
	int err;			/* errno of the query, 0 when a member */
};

static struct mc mcs[] = {
	{ 36, AF_INET, "239.1.2.3" }, { 36, AF_INET, "232.1.1.1" }, { 32, AF_INET6, "ff15::abcd" },
};
#define NMCS (sizeof(mcs) / sizeof(mcs[0]))

static void read_mc(struct mc *m)
{
	char buf[GROUP_FILTER_SIZE(4)];
	struct group_filter *gf = (void *)buf;
	socklen_t len = sizeof(buf);

	memset(buf, 0, sizeof(buf));
	gf->gf_interface = if_nametoindex("lo");
	gf->gf_group.ss_family = m->family;
	if (m->family == AF_INET)
		inet_pton(AF_INET, m->group, &((struct sockaddr_in *)&gf->gf_group)->sin_addr);
	else
		inet_pton(AF_INET6, m->group, &((struct sockaddr_in6 *)&gf->gf_group)->sin6_addr);
	gf->gf_numsrc = 4;
	m->err = getsockopt(m->fd, m->family == AF_INET ? SOL_IP : SOL_IPV6, MCAST_MSFILTER, gf,
			    &len) ? errno : 0;
	m->fmode = gf->gf_fmode;
	m->numsrc = gf->gf_numsrc;
	m->src = gf->gf_slist[0];
}

static void check_mc(const struct mc *want)
{
	struct mc now = *want;

	read_mc(&now);
	case_check(now.err == want->err && now.fmode == want->fmode && now.numsrc == want->numsrc &&
		   !memcmp(&now.src, &want->src, sizeof(now.src)),
		   "fd %d: group %s on lo: %s, mode %u, %u sources; want %s, mode %u, %u sources",
		   want->fd, want->group, now.err ? strerror(now.err) : "member", now.fmode,
		   now.numsrc, want->err ? strerror(want->err) : "member", want->fmode,
		   want->numsrc);
}

static void setup_mcast(void)
{
	struct ip_mreqn join = { .imr_ifindex = if_nametoindex("lo") };
	struct ip_mreq_source block = { .imr_interface.s_addr = htonl(INADDR_LOOPBACK) };
	struct ip_mreq_source only = block;
	struct ipv6_mreq join6 = { .ipv6mr_interface = if_nametoindex("lo") };
	struct in_addr lo_addr = { htonl(INADDR_LOOPBACK) };
	struct sockaddr_in any = { .sin_family = AF_INET };
	int fd = case_socket_at(AF_INET, SOCK_DGRAM, 0, 36);

	inet_pton(AF_INET, "239.1.2.3", &join.imr_multiaddr);
	block.imr_multiaddr = join.imr_multiaddr;
	inet_pton(AF_INET, "10.9.9.9", &block.imr_sourceaddr);
	inet_pton(AF_INET, "232.1.1.1", &only.imr_multiaddr);
	only.imr_sourceaddr = lo_addr;
	inet_pton(AF_INET6, "ff15::abcd", &join6.ipv6mr_multiaddr);
	if (bind(fd, (struct sockaddr *)&any, sizeof(any)) ||
	    setsockopt(fd, SOL_IP, IP_ADD_MEMBERSHIP, &join, sizeof(join)) ||
	    setsockopt(fd, SOL_IP, IP_BLOCK_SOURCE, &block, sizeof(block)) ||
	    setsockopt(fd, SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, &only, sizeof(only)) ||
	    setsockopt(32, SOL_IPV6, IPV6_ADD_MEMBERSHIP, &join6, sizeof(join6)))
		case_die("multicast memberships: %m");
	fd = case_socket_at(AF_INET, SOCK_DGRAM, 0, 37);
	if (setsockopt(fd, SOL_IP, IP_MULTICAST_IF, &lo_addr, sizeof(lo_addr)))
		case_die("fd 37: IP_MULTICAST_IF: %m");
	case_set_int(fd, SOL_IP, IP_MULTICAST_TTL, 3);
}

/* fd 37 sends to 239.1.2.3 at fd 36's port: fd 36 must get it. */
static void check_mcast_traffic(void)
{
	struct sockaddr_storage to = sks[6].local, from;
	struct sockaddr_in *sin = (void *)&to;
	socklen_t flen;
	char buf[16] = "";
	ssize_t n;

	inet_pton(AF_INET, "239.1.2.3", &sin->sin_addr);
	if (sendto(37, "mc", 2, 0, (struct sockaddr *)&to, sizeof(*sin)) != 2)
		case_fail("v4 multicast sender: sendto 239.1.2.3: %m");
	n = recv_one(36, buf, sizeof(buf), &from, &flen);
	case_check(n == 2 && !memcmp(buf, "mc", 2),
		   "v4 multicast member: nothing from group 239.1.2.3 (%zd): %m", n);
}

static void read_state(int fd, struct sk *r)
{
	socklen_t len;

	case_sockstate_read(fd, opts, NOPTS, &r->st);
	memset(&r->local, 0, sizeof(r->local));
	memset(&r->peer, 0, sizeof(r->peer));
	r->local_len = r->peer_len = sizeof(r->local);
	getsockname(fd, (struct sockaddr *)&r->local, &r->local_len);
	if (getpeername(fd, (struct sockaddr *)&r->peer, &r->peer_len))
		r->peer_len = 0;
	len = sizeof(r->rcvtimeo);
	getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r->rcvtimeo, &len);
	memset(r->ipopts, 0, sizeof(r->ipopts));
	memset(r->dstopts, 0, sizeof(r->dstopts));
	r->ipopts_len = sizeof(r->ipopts);
	if (getsockopt(fd, SOL_IP, IP_OPTIONS, r->ipopts, &r->ipopts_len))
		r->ipopts_len = 0;
	r->dstopts_len = sizeof(r->dstopts);
	if (getsockopt(fd, SOL_IPV6, IPV6_DSTOPTS, r->dstopts, &r->dstopts_len))
		r->dstopts_len = 0;
}

static void check_sk(const struct sk *want)
{
	struct sk now;

	if (!case_check_open(want->name, want->fd))
		return;
	read_state(want->fd, &now);
	case_sockstate_check(want->name, want->fd, opts, NOPTS, &now.st, &want->st);
	case_check_inet_addr(want->name, want->fd, "bound to", &now.local, now.local_len,
			     &want->local, want->local_len);
	case_check_inet_addr(want->name, want->fd, "connected to", &now.peer, now.peer_len,
			     &want->peer, want->peer_len);
	case_check(!memcmp(&now.rcvtimeo, &want->rcvtimeo, sizeof(now.rcvtimeo)),
		   "%s (fd %d): SO_RCVTIMEO %ld.%06ld, want %ld.%06ld", want->name, want->fd,
		   now.rcvtimeo.tv_sec, now.rcvtimeo.tv_usec, want->rcvtimeo.tv_sec,
		   want->rcvtimeo.tv_usec);
	case_check(now.ipopts_len == want->ipopts_len && !memcmp(now.ipopts, want->ipopts, sizeof(now.ipopts)),
		   "%s (fd %d): IP_OPTIONS of %u bytes, want %u", want->name, want->fd,
		   now.ipopts_len, want->ipopts_len);
	case_check(now.dstopts_len == want->dstopts_len &&
		   !memcmp(now.dstopts, want->dstopts, sizeof(now.dstopts)),
		   "%s (fd %d): IPV6_DSTOPTS of %u bytes, want %u", want->name, want->fd,
		   now.dstopts_len, want->dstopts_len);
}

/* Receives one datagram on fd (waiting up to 2 s); returns its length or -1. */
static ssize_t recv_one(int fd, char *buf, size_t len, struct sockaddr_storage *from,
			socklen_t *flen)
{
	*flen = sizeof(*from);
	if (!case_poll(fd, POLLIN, 2000))
		return -1;
	return recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)from, flen);
}

/* conn sends to its peer srv, which must see it come from conn's address, and answers. */
static void ping_pong(const struct sk *conn, const struct sk *srv)
{
	struct sockaddr_storage from;
	socklen_t flen;
	char buf[16] = "", a[80], b[80];
	ssize_t n;

	if (send(conn->fd, "ping", 4, 0) != 4) {
		case_fail("%s: send: %m", conn->name);
		return;
	}
	n = recv_one(srv->fd, buf, sizeof(buf), &from, &flen);
	if (n != 4 || memcmp(buf, "ping", 4)) {
		case_fail("%s: got %zd bytes from %s: %m", srv->name, n, conn->name);
		return;
	}
	case_check(flen == conn->local_len && !memcmp(&from, &conn->local, flen),
		   "%s: the datagram came from %s, want %s", srv->name,
		   case_inet_str(&from, flen, a, sizeof(a)),
		   case_inet_str(&conn->local, conn->local_len, b, sizeof(b)));
	if (sendto(srv->fd, "pong", 4, 0, (struct sockaddr *)&from, flen) != 4)
		case_fail("%s: sendto: %m", srv->name);
	n = recv_one(conn->fd, buf, sizeof(buf), &from, &flen);
	case_check(n == 4 && !memcmp(buf, "pong", 4), "%s: no pong back (%zd): %m", conn->name, n);
}

/* A stranger's datagram to a connected socket is dropped: only its peer's get through. */
static void check_filter(void)
{
	struct sockaddr_storage from;
	socklen_t flen;
	char buf[16] = "";
	ssize_t n;

	if (sendto(34, "stranger", 8, 0, (struct sockaddr *)&sks[1].local, sks[1].local_len) != 8)
		case_fail("v4 unbound: sendto: %m");
	if (sendto(30, "peer", 4, 0, (struct sockaddr *)&sks[1].local, sks[1].local_len) != 4)
		case_fail("v4 bound: sendto: %m");
	n = recv_one(31, buf, sizeof(buf), &from, &flen);
	case_check(n == 4 && !memcmp(buf, "peer", 4),
		   "v4 connected: first datagram is '%.*s' (%zd): a connected socket takes only its peer's",
		   n > 0 ? (int)n : 0, buf, n);
}

static void check_shutdown(void)
{
	errno = 0;
	case_check(send(35, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EPIPE,
		   "v4 shut down (fd 35): send did not fail with EPIPE (%m)");
}

static void sabotage(void)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	int v = 0;

	if (case_sabotage("v4_connected"))
		dup2(socket(AF_INET, SOCK_DGRAM, 0), 31);
	if (case_sabotage("disconnect"))
		connect(33, &sa, sizeof(sa));
	if (case_sabotage("pktinfo"))
		setsockopt(30, SOL_IP, IP_PKTINFO, &v, sizeof(v));
	if (case_sabotage("ip_options"))
		setsockopt(30, SOL_IP, IP_OPTIONS, NULL, 0);
	if (case_sabotage("v6_bound"))
		dup2(socket(AF_INET6, SOCK_DGRAM, 0), 32);
	if (case_sabotage("shutdown"))
		dup2(socket(AF_INET, SOCK_DGRAM, 0), 35);
	if (case_sabotage("mcast")) {
		struct ip_mreqn leave = { .imr_ifindex = if_nametoindex("lo") };

		inet_pton(AF_INET, "239.1.2.3", &leave.imr_multiaddr);
		setsockopt(36, SOL_IP, IP_DROP_MEMBERSHIP, &leave, sizeof(leave));
	}
	if (case_sabotage("mcast_source")) {
		struct ip_mreq_source unblock = { .imr_interface.s_addr = htonl(INADDR_LOOPBACK) };

		inet_pton(AF_INET, "239.1.2.3", &unblock.imr_multiaddr);
		inet_pton(AF_INET, "10.9.9.9", &unblock.imr_sourceaddr);
		setsockopt(36, SOL_IP, IP_UNBLOCK_SOURCE, &unblock, sizeof(unblock));
	}
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	setup_mcast();
	for (size_t i = 0; i < NSKS; i++)
		read_state(sks[i].fd, &sks[i]);
	for (size_t i = 0; i < NMCS; i++)
		read_mc(&mcs[i]);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NSKS; i++)
		check_sk(&sks[i]);
	ping_pong(&sks[1], &sks[0]);
	ping_pong(&sks[3], &sks[2]);
	check_filter();
	check_shutdown();
	for (size_t i = 0; i < NMCS; i++)
		check_mc(&mcs[i]);
	check_mcast_traffic();
	case_finish();
}
