/*
 * "inet" restore: a fresh socket of the same family, type and protocol, put through the
 * program's own steps again: options that bind(2) looks at, bind to the same address and port,
 * the other options, listen(2) with the same backlog or connect(2) to the same peer,
 * shutdown(2), then the file status flags.
 *
 * An explicit bind takes the same port even when the program had let the kernel pick one
 * (connect on an unbound UDP socket, or bind to port 0). The port must be free: the original
 * is gone by then, and a listener whose port still has TIME_WAIT connections needs
 * SO_REUSEADDR, as it would have needed when the program bound it.
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "files/files.h"
#include "util/log.h"
#include "util/util.h"

/* One socket being recreated. */
struct inet_restore {
	const InetSocket *is;
	int fd;
	char what[128];		/* "pid 12: TCP socket 127.0.0.1:80", for messages */
};

static int check_record(const struct fd_open_arg *a, const InetSocket *is)
{
	bool tcp = is->type == SOCK_STREAM && is->protocol == IPPROTO_TCP;
	bool udp = is->type == SOCK_DGRAM && is->protocol == IPPROTO_UDP;

	if ((is->family != AF_INET && is->family != AF_INET6) || (!tcp && !udp) || !is->sk ||
	    !is->opts || (is->state == INET_LISTEN && (!tcp || !is->has_backlog)) ||
	    (is->peer && !udp && !is->tcp_closed) || (is->tcp_closed && !tcp)) {
		pr_err("pid %d: files.img entry %u: not a socket crest can restore (family %u type %u protocol %u state %u)",
		       a->pid, a->id, is->family, is->type, is->protocol, is->state);
		return -EINVAL;
	}
	return 0;
}

static int to_sockaddr(const struct inet_restore *r, const InetSkAddr *ad,
		       struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *sin6 = (void *)ss;
	struct sockaddr_in *sin = (void *)ss;
	int ok;

	memset(ss, 0, sizeof(*ss));
	if (r->is->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(ad->port);
		ok = inet_pton(AF_INET, ad->ip, &sin->sin_addr);
		*len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(ad->port);
		sin6->sin6_scope_id = ad->has_scope_id ? ad->scope_id : 0;
		ok = inet_pton(AF_INET6, ad->ip, &sin6->sin6_addr);
		*len = sizeof(*sin6);
	}
	if (ok != 1) {
		pr_err("%s: bad address '%s' in the image", r->what, ad->ip);
		return -EINVAL;
	}
	return 0;
}

static int restore_congestion(const struct inet_restore *r)
{
	const char *want = r->is->opts->tcp_congestion;
	char now[INET_CA_NAME_MAX + 1] = "";
	socklen_t len = INET_CA_NAME_MAX;

	if (!want || !want[0])
		return 0;
	if (!getsockopt(r->fd, IPPROTO_TCP, TCP_CONGESTION, now, &len) && !strncmp(now, want, len))
		return 0;
	if (setsockopt(r->fd, IPPROTO_TCP, TCP_CONGESTION, want, strlen(want)))
		return pr_errno(-errno, "%s: cannot set TCP congestion control %s", r->what, want);
	return 0;
}

/* The options of one level that apply to this socket, or NULL. */
static const struct sockopt_int *level_table(const InetSocket *is, int level, size_t *n)
{
	switch (level) {
	case IPPROTO_IP:
		*n = inet_nr_ip_opts;
		return inet_ip_opts;
	case IPPROTO_IPV6:
		*n = inet_nr_ipv6_opts;
		return is->family == AF_INET6 ? inet_ipv6_opts : NULL;
	case IPPROTO_TCP:
		*n = inet_nr_tcp_opts;
		return is->protocol == IPPROTO_TCP ? inet_tcp_opts : NULL;
	default:
		*n = inet_nr_udp_opts;
		return is->protocol == IPPROTO_UDP ? inet_udp_opts : NULL;
	}
}

static const int levels[] = { IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP };

/*
 * The IP, IPv6, TCP and UDP options, then SOL_SOCKET ones (IP_TOS also sets SO_PRIORITY, so
 * an SO_PRIORITY of the program's own must come after it), then a check of them all.
 */
static int restore_opts(const struct inet_restore *r, enum sockopt_when when)
{
	const InetSocket *is = r->is;
	const struct sockopt_int *t;
	int err = 0;
	size_t n;

	for (size_t i = 0; !err && i < ARRAY_SIZE(levels); i++)
		if ((t = level_table(is, levels[i], &n)))
			err = sockopt_restore_ints(r->fd, t, n, is->opts, when, r->what);
	if (!err && is->protocol == IPPROTO_TCP && when == SOCKOPT_AFTER_BIND)
		err = restore_congestion(r);
	if (!err)
		err = sockopt_restore_sol(r->fd, is->sk, when, r->what);
	if (!err && when == SOCKOPT_AFTER_BIND)
		err = sockopt_restore_bytes(r->fd, inet_ip_bytes, inet_nr_ip_bytes, is->opts, r->what);
	if (!err && when == SOCKOPT_AFTER_BIND && is->family == AF_INET6)
		err = sockopt_restore_bytes(r->fd, inet_ipv6_bytes, inet_nr_ipv6_bytes, is->opts,
					    r->what);
	for (size_t i = 0; !err && when == SOCKOPT_AFTER_BIND && i < ARRAY_SIZE(levels); i++)
		if ((t = level_table(is, levels[i], &n)))
			err = sockopt_verify_ints(r->fd, t, n, is->opts, r->what);
	return err;
}

static int do_bind(const struct inet_restore *r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int err;

	if (!r->is->local)
		return 0;
	err = to_sockaddr(r, r->is->local, &ss, &len);
	if (err)
		return err;
	if (bind(r->fd, (struct sockaddr *)&ss, len))
		return pr_errno(-errno, "%s: cannot bind it again", r->what);
	return 0;
}

/* listen(2) caps the backlog at net.core.somaxconn: check that the same one came out. */
static int do_listen(const struct inet_restore *r)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (r->is->state != INET_LISTEN)
		return 0;
	if (listen(r->fd, r->is->backlog))
		return pr_errno(-errno, "%s: cannot listen with backlog %u", r->what, r->is->backlog);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(r->fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return pr_errno(-errno, "%s: cannot read TCP_INFO", r->what);
	if (ti.tcpi_sacked != r->is->backlog) {
		pr_err("%s: listen backlog is %u, want %u (net.core.somaxconn is lower than at dump?)",
		       r->what, ti.tcpi_sacked, r->is->backlog);
		return -EINVAL;
	}
	return 0;
}

static int do_connect(const struct inet_restore *r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char peer[64];
	int err;

	if (!r->is->peer)
		return 0;
	err = to_sockaddr(r, r->is->peer, &ss, &len);
	if (err)
		return err;
	if (connect(r->fd, (struct sockaddr *)&ss, len)) {
		inet_addr_str(r->is->peer, peer, sizeof(peer));
		return pr_errno(-errno, "%s: cannot connect it to %s again", r->what, peer);
	}
	return 0;
}

/*
 * shutdown(2) bits: 1 reading, 2 writing, so how = bits - 1 (SHUT_RD 0, SHUT_WR 1, SHUT_RDWR
 * 2). On a socket that is not connected the kernel records the bits and still says ENOTCONN
 * (inet_shutdown(), "hack to wake up other listeners").
 */
static int do_shutdown(const struct inet_restore *r)
{
	uint32_t bits = r->is->has_shutdown ? r->is->shutdown & 3 : 0;

	if (!bits)
		return 0;
	if (shutdown(r->fd, bits - 1) && errno != ENOTCONN)
		return pr_errno(-errno, "%s: cannot shut it down again (%u)", r->what, bits);
	return 0;
}

static int set_flags(const struct inet_restore *r)
{
	if (fcntl(r->fd, F_SETFL, r->is->flags & ~O_ACCMODE) < 0)
		return pr_errno(-errno, "%s: cannot set file flags %#o", r->what, r->is->flags);
	return 0;
}

static void describe(struct inet_restore *r, pid_t pid)
{
	char local[64] = "(unbound)";

	if (r->is->local)
		inet_addr_str(r->is->local, local, sizeof(local));
	snprintf(r->what, sizeof(r->what), "pid %d: %s%s socket %s", pid,
		 inet_proto_name(r->is->protocol), r->is->family == AF_INET6 ? "v6" : "", local);
}

int inet_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	struct inet_restore r = { .is = (const InetSocket *)rec };
	int err = check_record(a, r.is);

	if (err)
		return err;
	describe(&r, a->pid);
	r.fd = socket(r.is->family, r.is->type | SOCK_CLOEXEC, r.is->protocol);
	if (r.fd < 0)
		return pr_errno(-errno, "%s: cannot create the socket", r.what);
	err = restore_opts(&r, SOCKOPT_BEFORE_BIND);
	if (!err && r.is->tcp_closed)	/* instead of bind, listen, connect and shutdown */
		err = inet_closed_restore(r.fd, r.is, r.what);
	else if (!err)
		err = do_bind(&r);
	if (!err)
		err = restore_opts(&r, SOCKOPT_AFTER_BIND);
	if (!err)
		err = inet_mcast_restore(r.fd, r.is, r.what);
	if (!err && !r.is->tcp_closed)
		err = do_listen(&r);
	if (!err && !r.is->tcp_closed)
		err = do_connect(&r);
	if (!err && !r.is->tcp_closed)
		err = do_shutdown(&r);
	if (!err)
		err = set_flags(&r);
	if (err) {
		close(r.fd);
		return err;
	}
	return r.fd;
}
