/*
 * inet_listen: TCP sockets that carry no connection come back bound to the same address and
 * port, listening with the same backlog, with their options and file flags, and they work:
 * after SIGTERM each listener is connected to, and data goes both ways.
 *
 *   fd 20  TCP v4 listener on 127.0.0.1:<ephemeral>, backlog 7, O_NONBLOCK, SO_REUSEADDR,
 *          TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, IP_TOS, IP_TTL, SO_LINGER,
 *          SO_RCVLOWAT, SO_RCVTIMEO/SO_SNDTIMEO, SO_RCVBUF above net.core.rmem_max
 *   fd 21  TCP v6 listener on [::1]:<ephemeral>, backlog 3, IPV6_V6ONLY, SO_REUSEPORT,
 *          TCP_CORK, TCP_DEFER_ACCEPT, SO_SNDBUF, IPV6_UNICAST_HOPS, IPV6_TCLASS, FD_CLOEXEC
 *   fd 22  TCP v6 listener on [::]:<ephemeral>, dual stack (IPV6_V6ONLY off): a v4 client
 *          reaches it too
 *   fd 23  TCP v4 socket created and never bound, with TCP_NODELAY and SO_KEEPALIVE: it comes
 *          back unbound and can still connect
 *   fd 24  TCP v4 socket bound to 127.0.0.1:<ephemeral>, never listening
 *
 * Every option is read back at "ready" and compared after SIGTERM. In each exchange the client
 * closes first, so TIME_WAIT lands on the client's port and the listening ports are free for
 * the next restore of the same image.
 */
#include "case.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

/* An integer option every socket is checked for (absent ones must stay absent). */
struct opt {
	int level, name;
	const char *label;
};

static const struct opt opts[] = {
	{ SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR" }, { SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT" },
	{ SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF" }, { SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF" },
	{ SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE" }, { SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT" },
	{ SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN" }, { SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST" },
	{ SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN" }, { SOL_SOCKET, SO_TYPE, "SO_TYPE" },
	{ SOL_IP, IP_TOS, "IP_TOS" }, { SOL_IP, IP_TTL, "IP_TTL" },
	{ SOL_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY" }, { SOL_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS" },
	{ SOL_IPV6, IPV6_TCLASS, "IPV6_TCLASS" },
	{ SOL_TCP, TCP_NODELAY, "TCP_NODELAY" }, { SOL_TCP, TCP_CORK, "TCP_CORK" },
	{ SOL_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE" }, { SOL_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL" },
	{ SOL_TCP, TCP_KEEPCNT, "TCP_KEEPCNT" }, { SOL_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT" },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* One socket of the case and what it looked like at "ready". */
struct sk {
	int fd;
	const char *name;
	int vals[NOPTS];
	bool have[NOPTS];
	struct sockaddr_storage local;
	socklen_t local_len;
	struct linger linger;
	struct timeval rcvtimeo, sndtimeo;
	unsigned int backlog;	/* tcpi_sacked of a listener */
	int fl, fdfl;
};

static struct sk sks[] = {
	{ 20, "v4 listener" }, { 21, "v6 listener" }, { 22, "dual-stack listener" },
	{ 23, "unbound socket" }, { 24, "bound socket" },
};
#define NSKS (sizeof(sks) / sizeof(sks[0]))

static void set_int(int fd, int level, int name, int val, const char *label)
{
	if (setsockopt(fd, level, name, &val, sizeof(val)))
		case_die("fd %d: setsockopt %s=%d: %m", fd, label, val);
}

static int make_socket(int family, int fd)
{
	int s = socket(family, SOCK_STREAM, 0);

	if (s < 0 || dup2(s, fd) != fd)
		case_die("socket for fd %d: %m", fd);
	close(s);
	return fd;
}

static void bind_loopback(int fd, int family, bool any)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	int r;

	if (family == AF_INET) {
		sin.sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
		r = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	} else {
		sin6.sin6_addr = any ? in6addr_any : in6addr_loopback;
		r = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6));
	}
	if (r)
		case_die("fd %d: bind: %m", fd);
}

static void setup_v4(void)
{
	struct linger l = { 1, 5 };
	struct timeval rt = { 1, 500000 }, st = { 2, 250000 };
	int fd = make_socket(AF_INET, 20), rmem_max = 212992;
	char buf[32];

	set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	bind_loopback(fd, AF_INET, false);
	set_int(fd, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	set_int(fd, SOL_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
	set_int(fd, SOL_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
	set_int(fd, SOL_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
	set_int(fd, SOL_IP, IP_TOS, 0x10, "IP_TOS");
	set_int(fd, SOL_IP, IP_TTL, 33, "IP_TTL");
	/* twice rmem_max: only SO_RCVBUFFORCE (root) gets there, on restore too */
	if (case_read_file("/proc/sys/net/core/rmem_max", buf, sizeof(buf)) > 0)
		rmem_max = atoi(buf);
	set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rmem_max * 2, "SO_RCVBUFFORCE");
	set_int(fd, SOL_SOCKET, SO_RCVLOWAT, 3, "SO_RCVLOWAT");
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)))
		case_die("fd 20: linger or timeouts: %m");
	if (listen(fd, 7) || fcntl(fd, F_SETFL, O_NONBLOCK))
		case_die("fd 20: listen: %m");
}

static void setup_v6(void)
{
	int fd = make_socket(AF_INET6, 21);

	set_int(fd, SOL_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
	set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
	bind_loopback(fd, AF_INET6, false);
	set_int(fd, SOL_TCP, TCP_CORK, 1, "TCP_CORK");
	set_int(fd, SOL_TCP, TCP_DEFER_ACCEPT, 5, "TCP_DEFER_ACCEPT");
	set_int(fd, SOL_SOCKET, SO_SNDBUF, 32768, "SO_SNDBUF");
	set_int(fd, SOL_IPV6, IPV6_UNICAST_HOPS, 17, "IPV6_UNICAST_HOPS");
	set_int(fd, SOL_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS");
	if (listen(fd, 3) || fcntl(fd, F_SETFD, FD_CLOEXEC))
		case_die("fd 21: listen: %m");

	fd = make_socket(AF_INET6, 22);
	set_int(fd, SOL_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
	bind_loopback(fd, AF_INET6, true);
	if (listen(fd, 16))
		case_die("fd 22: listen: %m");
}

static void setup_plain(void)
{
	int fd = make_socket(AF_INET, 23);

	set_int(fd, SOL_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	fd = make_socket(AF_INET, 24);
	bind_loopback(fd, AF_INET, false);
}

/* What sk looks like now, into *r. */
static void read_state(int fd, struct sk *r)
{
	struct tcp_info ti;
	socklen_t len;

	for (size_t i = 0; i < NOPTS; i++) {
		len = sizeof(r->vals[i]);
		r->have[i] = !getsockopt(fd, opts[i].level, opts[i].name, &r->vals[i], &len);
		if (!r->have[i])
			r->vals[i] = 0;
	}
	r->local_len = sizeof(r->local);
	memset(&r->local, 0, sizeof(r->local));
	getsockname(fd, (struct sockaddr *)&r->local, &r->local_len);
	len = sizeof(r->linger);
	getsockopt(fd, SOL_SOCKET, SO_LINGER, &r->linger, &len);
	len = sizeof(r->rcvtimeo);
	getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r->rcvtimeo, &len);
	len = sizeof(r->sndtimeo);
	getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &r->sndtimeo, &len);
	len = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len);
	r->backlog = ti.tcpi_state == TCP_LISTEN ? ti.tcpi_sacked : 0;
	r->fl = fcntl(fd, F_GETFL);
	r->fdfl = fcntl(fd, F_GETFD);
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const struct sockaddr_in *sin = (const void *)ss;
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "(family %d)", ss->ss_family);
	}
	return buf;
}

static void check_sk(const struct sk *want)
{
	struct sk now;
	char a[80], b[80];

	if (fcntl(want->fd, F_GETFD) < 0) {
		case_fail("%s (fd %d): not open", want->name, want->fd);
		return;
	}
	read_state(want->fd, &now);
	for (size_t i = 0; i < NOPTS; i++)
		case_check(now.have[i] == want->have[i] && now.vals[i] == want->vals[i],
			   "%s (fd %d): %s is %d%s, want %d%s", want->name, want->fd, opts[i].label,
			   now.vals[i], now.have[i] ? "" : " (absent)", want->vals[i],
			   want->have[i] ? "" : " (absent)");
	case_check(now.local_len == want->local_len && !memcmp(&now.local, &want->local, now.local_len),
		   "%s (fd %d): bound to %s, want %s", want->name, want->fd,
		   addr_str(&now.local, a, sizeof(a)), addr_str(&want->local, b, sizeof(b)));
	case_check(!memcmp(&now.linger, &want->linger, sizeof(now.linger)),
		   "%s (fd %d): SO_LINGER {%d, %d}, want {%d, %d}", want->name, want->fd,
		   now.linger.l_onoff, now.linger.l_linger, want->linger.l_onoff, want->linger.l_linger);
	case_check(!memcmp(&now.rcvtimeo, &want->rcvtimeo, sizeof(now.rcvtimeo)) &&
		   !memcmp(&now.sndtimeo, &want->sndtimeo, sizeof(now.sndtimeo)),
		   "%s (fd %d): timeouts rcv %ld.%06ld snd %ld.%06ld, want %ld.%06ld and %ld.%06ld",
		   want->name, want->fd, now.rcvtimeo.tv_sec, now.rcvtimeo.tv_usec,
		   now.sndtimeo.tv_sec, now.sndtimeo.tv_usec, want->rcvtimeo.tv_sec,
		   want->rcvtimeo.tv_usec, want->sndtimeo.tv_sec, want->sndtimeo.tv_usec);
	case_check(now.backlog == want->backlog, "%s (fd %d): backlog %u, want %u", want->name,
		   want->fd, now.backlog, want->backlog);
	case_check(now.fl == want->fl && now.fdfl == want->fdfl,
		   "%s (fd %d): flags %#o/%#x, want %#o/%#x", want->name, want->fd, now.fl, now.fdfl,
		   want->fl, want->fdfl);
}

static bool wait_fd(int fd, short ev)
{
	struct pollfd p = { fd, ev, 0 };

	return poll(&p, 1, 5000) == 1;
}

/* Client c (connected) and the listener lfd: ping one way, pong back, client closes first. */
static void exchange(const char *what, int c, int lfd)
{
	char buf[8] = "";
	int s;

	if (send(c, "ping", 4, 0) != 4) {
		case_fail("%s: send: %m", what);
		return;
	}
	s = wait_fd(lfd, POLLIN) ? accept(lfd, NULL, NULL) : -1;
	if (s < 0) {
		case_fail("%s: nothing to accept: %m", what);
		return;
	}
	/* accepted sockets inherit TCP_CORK from the listener: let pong go at once */
	set_int(s, SOL_TCP, TCP_CORK, 0, "TCP_CORK");
	if (!wait_fd(s, POLLIN) || recv(s, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "ping", 4))
		case_fail("%s: the accepted socket did not get ping: %m", what);
	if (send(s, "pong", 4, 0) != 4)
		case_fail("%s: send pong: %m", what);
	memset(buf, 0, sizeof(buf));
	if (!wait_fd(c, POLLIN) || recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "pong", 4))
		case_fail("%s: the client did not get pong: %m", what);
	close(c);
	if (!wait_fd(s, POLLIN) || recv(s, buf, 1, 0) != 0)
		case_fail("%s: no end of stream after the client closed", what);
	close(s);
}

/* Connects a new client (or the given socket, -1 for a new one) to where sk is bound. */
static void connect_and_exchange(const char *what, int c, const struct sk *srv, int family)
{
	struct sockaddr_storage to = srv->local;
	struct sockaddr_in *sin = (void *)&to;

	if (family == AF_INET && srv->local.ss_family == AF_INET6) {
		/* a v4 client of the dual-stack listener: 127.0.0.1, same port */
		in_port_t port = ((struct sockaddr_in6 *)&srv->local)->sin6_port;

		memset(&to, 0, sizeof(to));
		sin->sin_family = AF_INET;
		sin->sin_port = port;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (void *)&to;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
	if (c < 0)
		c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&to, family == AF_INET ?
			     sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) {
		case_fail("%s: connect: %m", what);
		if (c >= 0)
			close(c);
		return;
	}
	exchange(what, c, srv->fd);
}

static void sabotage(void)
{
	int v = 0;

	if (case_sabotage("v4_listener"))
		dup2(socket(AF_INET, SOCK_STREAM, 0), 20);
	if (case_sabotage("backlog"))
		listen(21, 1);
	if (case_sabotage("reuseaddr"))
		setsockopt(20, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v));
	if (case_sabotage("rcvbuf")) {
		v = 4096;
		setsockopt(20, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	}
	if (case_sabotage("nonblock"))
		fcntl(20, F_SETFL, 0);
	if (case_sabotage("unbound"))
		bind_loopback(23, AF_INET, false);
	if (case_sabotage("v6_listener"))
		dup2(socket(AF_INET6, SOCK_STREAM, 0), 21);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup_v4();
	setup_v6();
	setup_plain();
	for (size_t i = 0; i < NSKS; i++)
		read_state(sks[i].fd, &sks[i]);
	case_ready();
	case_wait();

	sabotage();
	for (size_t i = 0; i < NSKS; i++)
		check_sk(&sks[i]);
	connect_and_exchange("v4 listener", -1, &sks[0], AF_INET);
	connect_and_exchange("v6 listener", -1, &sks[1], AF_INET6);
	connect_and_exchange("dual-stack listener, v6 client", -1, &sks[2], AF_INET6);
	connect_and_exchange("dual-stack listener, v4 client", -1, &sks[2], AF_INET);
	/* the restored unbound socket is still good for a connection of its own */
	connect_and_exchange("unbound socket to the v4 listener", 23, &sks[0], AF_INET);
	case_finish();
}
