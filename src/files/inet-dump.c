/*
 * "inet" dump: what a TCP or UDP socket is, read without changing it.
 *
 * Nothing is ever received through our copy of the description: that would take data from the
 * target. Instead (Linux 6.x behaviour):
 *  - TCP_INFO gives the TCP state; for a listener tcpi_unacked is the number of connections
 *    waiting in the accept queue and tcpi_sacked the backlog (sk_max_ack_backlog, what
 *    listen(2) kept after capping at net.core.somaxconn); tcpi_segs_in/out tell a socket that
 *    once carried a connection from a fresh one.
 *  - poll(2) with a zero timeout: POLLERR for a pending error or error queue (reading SO_ERROR
 *    would clear it), POLLIN for queued datagrams, POLLRDHUP for shutdown(SHUT_RD).
 *  - SIOCINQ (the first datagram's size) and SIOCOUTQ (bytes held for sending, such as a
 *    corked datagram) are ioctls that only read.
 *  - sock_diag (inet-diag.c) for half-open and deferred connections of a listener and for
 *    SHUT_WR on a UDP socket.
 * A UDP receive queue could be walked without consuming it (SO_PEEK_OFF works for UDP and
 * skips whole datagrams), but the datagrams could not be queued again with their senders'
 * addresses, so a socket with anything queued is refused rather than restored without it.
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "cli/opts.h"
#include "files/files.h"
#include "util/log.h"
#include "util/util.h"

#define SHUT_RD_BIT 1	/* sk_shutdown bits: RCV_SHUTDOWN, SEND_SHUTDOWN */
#define SHUT_WR_BIT 2

/* One socket being dumped. */
struct inet_dump {
	const struct fd_dump_arg *a;
	InetSocket *is;
	char what[48];		/* "pid 12 fd 3", for messages */
	char local[64];		/* "127.0.0.1:80" */
	char peer[64];		/* "127.0.0.1:40000", "?" when not connected */
};

static __attribute__((format(printf, 2, 3))) int refuse(const struct inet_dump *d,
							 const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s: %s socket %s: %s: cannot checkpoint it yet", d->what,
	       inet_proto_name(d->is->protocol), d->local, msg);
	return -EOPNOTSUPP;
}

static int get_int(int sk, int level, int opt, uint32_t *val)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (getsockopt(sk, level, opt, &v, &len))
		return -errno;
	*val = v;
	return 0;
}

/* Family, type and protocol; only TCP and UDP are supported. */
static int read_identity(struct inet_dump *d)
{
	InetSocket *is = d->is;
	int lfd = d->a->lfd;

	if (get_int(lfd, SOL_SOCKET, SO_DOMAIN, &is->family) ||
	    get_int(lfd, SOL_SOCKET, SO_TYPE, &is->type) ||
	    get_int(lfd, SOL_SOCKET, SO_PROTOCOL, &is->protocol))
		return pr_errno(-errno, "%s: cannot read the socket's family, type and protocol", d->what);
	if ((is->type == SOCK_STREAM && is->protocol == IPPROTO_TCP) ||
	    (is->type == SOCK_DGRAM && is->protocol == IPPROTO_UDP))
		return 0;
	pr_err("%s: socket of family %s type %u protocol %u: cannot checkpoint it yet", d->what,
	       is->family == AF_INET ? "AF_INET" : "AF_INET6", is->type, is->protocol);
	return -EOPNOTSUPP;
}

static InetSkAddr *new_addr(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	const struct sockaddr_in *sin = (const void *)ss;
	char ip[INET6_ADDRSTRLEN] = "";
	InetSkAddr *ad = xmalloc(sizeof(*ad));

	if (!ad)
		return NULL;
	inet_sk_addr__init(ad);
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		ad->port = ntohs(sin->sin_port);
	} else {
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		ad->port = ntohs(sin6->sin6_port);
		ad->has_scope_id = sin6->sin6_scope_id != 0;
		ad->scope_id = sin6->sin6_scope_id;
	}
	ad->ip = xstrdup(ip);
	if (!ad->ip) {
		free(ad);
		return NULL;
	}
	return ad;
}

static bool is_any(const InetSkAddr *ad)
{
	return !strcmp(ad->ip, "0.0.0.0") || !strcmp(ad->ip, "::");
}

/* getsockname always; getpeername when connected (ENOTCONN otherwise). */
static int read_addrs(struct inet_dump *d)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	InetSkAddr *ad;

	if (getsockname(d->a->lfd, (struct sockaddr *)&ss, &len))
		return pr_errno(-errno, "%s: getsockname failed", d->what);
	ad = new_addr(&ss);
	if (!ad)
		return -ENOMEM;
	inet_addr_str(ad, d->local, sizeof(d->local));
	if (ad->port || !is_any(ad))
		d->is->local = ad;
	else
		inet_sk_addr__free_unpacked(ad, NULL);
	len = sizeof(ss);
	snprintf(d->peer, sizeof(d->peer), "?");
	if (getpeername(d->a->lfd, (struct sockaddr *)&ss, &len))
		return errno == ENOTCONN ? 0 : pr_errno(-errno, "%s: getpeername failed", d->what);
	d->is->peer = new_addr(&ss);
	if (!d->is->peer)
		return -ENOMEM;
	inet_addr_str(d->is->peer, d->peer, sizeof(d->peer));
	return 0;
}

/* poll(2) bits now, without waiting and without reading anything. */
static short poll_now(int fd)
{
	struct pollfd p = { fd, POLLIN | POLLRDHUP, 0 };

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

/* ---- TCP ---- */

struct syn_recv_count {
	uint32_t port;
	int n;
};

static int count_syn_recv(const struct inet_diag_sk *sk, void *arg)
{
	struct syn_recv_count *c = arg;

	if (ntohs(sk->msg->id.idiag_sport) == c->port)
		c->n++;
	return 0;
}

/*
 * Connections of a listener still being set up: half-open (SYN received) or deferred by
 * TCP_DEFER_ACCEPT until data comes. They live as request sockets, not in the accept queue, so
 * only sock_diag shows them. IPv4 clients of an IPv6 listener make IPv4 request sockets, so
 * both families are asked; any on the listener's port counts.
 */
static int check_syn_recv(struct inet_dump *d)
{
	struct syn_recv_count c = { d->is->local ? d->is->local->port : 0, 0 };
	uint32_t states = 1u << INET_SYN_RECV | 1u << INET_NEW_SYN_RECV;
	int err = inet_diag_walk(AF_INET, IPPROTO_TCP, states, count_syn_recv, &c);

	if (!err && d->is->family == AF_INET6)
		err = inet_diag_walk(AF_INET6, IPPROTO_TCP, states, count_syn_recv, &c);
	if (err == -ENOENT) {
		pr_info("%s: no sock_diag for TCP: connections being set up are not checked", d->what);
		return 0;
	}
	if (err)
		return pr_errno(err, "%s: cannot list the connections being set up (sock_diag)", d->what);
	if (c.n)
		return refuse(d, "listening with %d connection(s) still being set up (SYN_RECV, or held by TCP_DEFER_ACCEPT)",
			      c.n);
	return 0;
}

static int dump_tcp_listen(struct inet_dump *d, const struct tcp_info *ti)
{
	if (ti->tcpi_unacked)
		return refuse(d, "listening with %u connection(s) not yet accepted", ti->tcpi_unacked);
	d->is->has_backlog = true;
	d->is->backlog = ti->tcpi_sacked;
	return check_syn_recv(d);
}

/*
 * --tcp-close: a connection saved as closed. Its queues are not saved. What a connection sets
 * by itself is left out, as a fresh socket refuses it or the program never chose it: the MSS
 * it negotiated, the window clamp it computed, and the multicast TTL, hops and interface that
 * an accepted socket takes from the SYN (tcp_v4_syn_recv_sock(), tcp_v6_syn_recv_sock();
 * TCP refuses to set them).
 */
static void drop_conn_opts(InetSkOpts *o)
{
	o->has_tcp_maxseg = false;
	o->has_tcp_window_clamp = false;
	o->has_ip_multicast_ttl = false;
	o->has_ipv6_multicast_hops = false;
	o->has_ipv6_multicast_if = false;
}

static int dump_tcp_closed(struct inet_dump *d)
{
	pr_info("%s: TCP connection %s -> %s (%s) saved as closed (--tcp-close)", d->what, d->local,
		d->peer, inet_state_name(d->is->state));
	d->is->has_tcp_closed = true;
	d->is->tcp_closed = true;
	d->is->has_shutdown = false;
	return 0;
}

static int dump_tcp(struct inet_dump *d)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	short ev;

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(d->a->lfd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return pr_errno(-errno, "%s: cannot read TCP_INFO", d->what);
	d->is->state = ti.tcpi_state;
	if (ti.tcpi_state == INET_LISTEN)
		return dump_tcp_listen(d, &ti);
	if (d->a->opts && d->a->opts->tcp_close && (ti.tcpi_state != INET_CLOSE || ti.tcpi_segs_in ||
				      ti.tcpi_segs_out))
		return dump_tcp_closed(d);
	if (ti.tcpi_state != INET_CLOSE) {
		pr_err("%s: TCP connection %s -> %s (%s): TCP connections cannot be checkpointed yet (--tcp-close saves them as closed)",
		       d->what, d->local, d->peer, inet_state_name(ti.tcpi_state));
		return -EOPNOTSUPP;
	}
	if (ti.tcpi_segs_in || ti.tcpi_segs_out)
		return refuse(d, "a connection that has ended (closed or reset, not yet close()d)");
	ev = poll_now(d->a->lfd);
	if (ev & POLLERR)
		return refuse(d, "a pending socket error");
	if (ev & POLLRDHUP) {
		d->is->has_shutdown = true;
		d->is->shutdown = SHUT_RD_BIT;
	}
	return 0;
}

/* ---- UDP ---- */

/* Bytes held for sending. A datagram just handed to a device is freed a moment later. */
static int udp_outq(int fd)
{
	int outq = 0;

	for (int i = 0; i < 20; i++) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		if (ioctl(fd, SIOCOUTQ, &outq) || outq <= 0)
			return 0;
		nanosleep(&ts, NULL);
	}
	return outq;
}

/* A socket looked for by inode in a sock_diag dump, and its shutdown bits once found. */
struct shutdown_query {
	uint64_t ino;
	int shutdown;
};

static int find_shutdown(const struct inet_diag_sk *sk, void *arg)
{
	struct shutdown_query *q = arg;

	if (sk->msg->idiag_inode != q->ino)
		return 0;
	q->shutdown = sk->shutdown;
	return 1;
}

/* shutdown(SHUT_WR) of a UDP socket shows nowhere but in sock_diag (bound sockets only). */
static int udp_send_shutdown(struct inet_dump *d)
{
	struct shutdown_query q = { d->a->st->st_ino, -1 };
	int ret;

	if (!d->is->local)
		return 0;
	ret = inet_diag_walk(d->is->family, IPPROTO_UDP, ~0u, find_shutdown, &q);
	if (ret < 0) {
		pr_info("%s: no sock_diag for UDP (%s): shutdown(SHUT_WR) is not checked", d->what,
			strerror(-ret));
		return 0;
	}
	if (q.shutdown > 0 && (q.shutdown & SHUT_WR_BIT)) {
		d->is->has_shutdown = true;
		d->is->shutdown |= SHUT_WR_BIT;
	}
	return 0;
}

static int dump_udp(struct inet_dump *d)
{
	short ev = poll_now(d->a->lfd);
	int inq = 0, outq;

	d->is->state = d->is->peer ? INET_ESTABLISHED : INET_CLOSE;
	if (ev & POLLERR)
		return refuse(d, "a pending socket error or queued error messages (MSG_ERRQUEUE)");
	if (ioctl(d->a->lfd, SIOCINQ, &inq))
		inq = 0;
	/* after shutdown(SHUT_RD) POLLIN is always set: then only SIOCINQ tells */
	if (inq > 0 || ((ev & POLLIN) && !(ev & POLLRDHUP)))
		return refuse(d, "datagrams waiting to be read (a UDP receive queue cannot be saved)");
	outq = udp_outq(d->a->lfd);
	if (outq > 0)
		return refuse(d, "%d bytes held for sending (UDP_CORK or MSG_MORE)", outq);
	if (ev & POLLRDHUP) {
		d->is->has_shutdown = true;
		d->is->shutdown = SHUT_RD_BIT;
	}
	return udp_send_shutdown(d);
}

/* ---- options ---- */

static int dump_congestion(struct inet_dump *d, InetSkOpts *o)
{
	char name[INET_CA_NAME_MAX + 1] = "";
	socklen_t len = INET_CA_NAME_MAX;

	if (getsockopt(d->a->lfd, IPPROTO_TCP, TCP_CONGESTION, name, &len))
		return pr_errno(-errno, "%s: cannot read TCP_CONGESTION", d->what);
	name[MIN((size_t)len, (size_t)INET_CA_NAME_MAX)] = '\0';
	o->tcp_congestion = xstrdup(name);
	return o->tcp_congestion ? 0 : -ENOMEM;
}

static int dump_opts(struct inet_dump *d)
{
	InetSkOpts *o = xmalloc(sizeof(*o));
	int lfd = d->a->lfd, err;

	if (!o)
		return -ENOMEM;
	inet_sk_opts__init(o);
	d->is->opts = o;
	err = sockopt_dump_sol(lfd, &d->is->sk, d->what);
	if (!err)
		err = sockopt_dump_ints(lfd, inet_ip_opts, inet_nr_ip_opts, o, d->what);
	if (!err && d->is->family == AF_INET6)
		err = sockopt_dump_ints(lfd, inet_ipv6_opts, inet_nr_ipv6_opts, o, d->what);
	if (!err && d->is->protocol == IPPROTO_TCP)
		err = sockopt_dump_ints(lfd, inet_tcp_opts, inet_nr_tcp_opts, o, d->what);
	if (!err && d->is->protocol == IPPROTO_TCP)
		err = dump_congestion(d, o);
	if (!err && d->is->protocol == IPPROTO_UDP)
		err = sockopt_dump_ints(lfd, inet_udp_opts, inet_nr_udp_opts, o, d->what);
	if (!err)
		err = sockopt_dump_bytes(lfd, inet_ip_bytes, inet_nr_ip_bytes, o, d->what);
	if (!err && d->is->family == AF_INET6)
		err = sockopt_dump_bytes(lfd, inet_ipv6_bytes, inet_nr_ipv6_bytes, o, d->what);
	if (!err)
		err = inet_mcast_dump(lfd, d->is, d->what);
	return err;
}

int inet_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct inet_dump d = { .a = a };
	int err;

	snprintf(d.what, sizeof(d.what), "pid %d fd %d", a->pid, a->fd);
	d.is = xmalloc(sizeof(*d.is));
	if (!d.is)
		return -ENOMEM;
	inet_socket__init(d.is);
	d.is->flags = a->flags;
	d.is->has_ino = true;
	d.is->ino = a->st->st_ino;
	err = read_identity(&d);
	if (!err)
		err = sockopt_check_netns(a->lfd, d.what);
	if (!err)
		err = read_addrs(&d);
	if (!err)
		err = d.is->protocol == IPPROTO_TCP ? dump_tcp(&d) : dump_udp(&d);
	if (!err)
		err = dump_opts(&d);
	if (!err && d.is->tcp_closed)
		drop_conn_opts(d.is->opts);
	if (err) {
		inet_socket__free_unpacked(d.is, NULL);
		return err;
	}
	*ret = &d.is->base;
	return 0;
}
