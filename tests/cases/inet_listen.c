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

/* The integer options every socket is checked for (absent ones must stay absent). */
static const struct case_sockopt opts[] = {
	CASE_SOCKOPTS_INET,
	CASE_SOCKOPT(SOL_SOCKET, SO_KEEPALIVE), CASE_SOCKOPT(SOL_SOCKET, SO_RCVLOWAT),
	CASE_SOCKOPT(SOL_SOCKET, SO_ACCEPTCONN), CASE_SOCKOPT(SOL_IPV6, IPV6_TCLASS),
	CASE_SOCKOPT(SOL_TCP, TCP_NODELAY), CASE_SOCKOPT(SOL_TCP, TCP_CORK),
	CASE_SOCKOPT(SOL_TCP, TCP_KEEPIDLE), CASE_SOCKOPT(SOL_TCP, TCP_KEEPINTVL),
	CASE_SOCKOPT(SOL_TCP, TCP_KEEPCNT), CASE_SOCKOPT(SOL_TCP, TCP_DEFER_ACCEPT),
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* One socket of the case and what it looked like at "ready". */
struct sk {
	int fd;
	const char *name;
	struct case_sockstate st;	/* the options above, the file flags */
	struct sockaddr_storage local;
	socklen_t local_len;
	struct linger linger;
	struct timeval rcvtimeo, sndtimeo;
	unsigned int backlog;	/* tcpi_sacked of a listener */
};

static struct sk sks[] = {
	{ 20, "v4 listener" }, { 21, "v6 listener" }, { 22, "dual-stack listener" },
	{ 23, "unbound socket" }, { 24, "bound socket" },
};
#define NSKS (sizeof(sks) / sizeof(sks[0]))

static void setup_v4(void)
{
	struct linger l = { 1, 5 };
	struct timeval rt = { 1, 500000 }, st = { 2, 250000 };
	int fd = case_socket_at(AF_INET, SOCK_STREAM, 0, 20), rmem_max = 212992;
	char buf[32];

	case_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	case_inet_bind(fd, AF_INET, false);
	case_set_int(fd, SOL_TCP, TCP_NODELAY, 1);
	case_set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	case_set_int(fd, SOL_TCP, TCP_KEEPIDLE, 77);
	case_set_int(fd, SOL_TCP, TCP_KEEPINTVL, 11);
	case_set_int(fd, SOL_TCP, TCP_KEEPCNT, 4);
	case_set_int(fd, SOL_IP, IP_TOS, 0x10);
	case_set_int(fd, SOL_IP, IP_TTL, 33);
	/* twice rmem_max: only SO_RCVBUFFORCE (root) gets there, on restore too */
	if (case_read_file("/proc/sys/net/core/rmem_max", buf, sizeof(buf)) > 0)
		rmem_max = atoi(buf);
	case_set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rmem_max * 2);
	case_set_int(fd, SOL_SOCKET, SO_RCVLOWAT, 3);
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)))
		case_die("fd 20: linger or timeouts: %m");
	if (listen(fd, 7) || fcntl(fd, F_SETFL, O_NONBLOCK))
		case_die("fd 20: listen: %m");
}

static void setup_v6(void)
{
	int fd = case_socket_at(AF_INET6, SOCK_STREAM, 0, 21);

	case_set_int(fd, SOL_IPV6, IPV6_V6ONLY, 1);
	case_set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	case_inet_bind(fd, AF_INET6, false);
	case_set_int(fd, SOL_TCP, TCP_CORK, 1);
	case_set_int(fd, SOL_TCP, TCP_DEFER_ACCEPT, 5);
	case_set_int(fd, SOL_SOCKET, SO_SNDBUF, 32768);
	case_set_int(fd, SOL_IPV6, IPV6_UNICAST_HOPS, 17);
	case_set_int(fd, SOL_IPV6, IPV6_TCLASS, 0x20);
	if (listen(fd, 3) || fcntl(fd, F_SETFD, FD_CLOEXEC))
		case_die("fd 21: listen: %m");

	fd = case_socket_at(AF_INET6, SOCK_STREAM, 0, 22);
	case_set_int(fd, SOL_IPV6, IPV6_V6ONLY, 0);
	case_inet_bind(fd, AF_INET6, true);
	if (listen(fd, 16))
		case_die("fd 22: listen: %m");
}

static void setup_plain(void)
{
	int fd = case_socket_at(AF_INET, SOCK_STREAM, 0, 23);

	case_set_int(fd, SOL_TCP, TCP_NODELAY, 1);
	case_set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	fd = case_socket_at(AF_INET, SOCK_STREAM, 0, 24);
	case_inet_bind(fd, AF_INET, false);
}

/* What sk looks like now, into *r. */
static void read_state(int fd, struct sk *r)
{
	struct tcp_info ti;
	socklen_t len;

	case_sockstate_read(fd, opts, NOPTS, &r->st);
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
}

static bool wait_fd(int fd, short ev)
{
	return case_poll(fd, ev, 5000);
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
	case_set_int(s, SOL_TCP, TCP_CORK, 0);
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

	if (family == AF_INET && srv->local.ss_family == AF_INET6) {
		/* a v4 client of the dual-stack listener: 127.0.0.1, same port */
		in_port_t port = ((struct sockaddr_in6 *)&srv->local)->sin6_port;

		case_inet_addr(AF_INET, false, port, &to);
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
		case_inet_bind(23, AF_INET, false);
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
	case_ready_wait();

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
