/*
 * "inet" restore of a TCP connection saved with `crest dump --tcp-close`: the program gets a
 * socket in the state of a connection its peer reset. The kernel makes such a socket only out
 * of a real connection, so crest makes one: a listener of its own on the socket's local
 * address (or loopback, where this machine lacks that address), the socket connected to it
 * (which gives it that local address and a port the kernel picks and frees at the reset),
 * and the accepted end closed with SO_LINGER 0, which sends a RST (tcp_disconnect()). The
 * socket then holds ECONNRESET for its first read (tcp_reset()), is shut down both ways
 * (tcp_done()), so later reads return 0 and writes fail with EPIPE, and is in TCP_CLOSE.
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

/* ip:0 of the socket's family; loopback when ip is NULL. */
static int any_port(const InetSocket *is, const char *ip, struct sockaddr_storage *ss,
		    socklen_t *len)
{
	struct sockaddr_in6 *sin6 = (void *)ss;
	struct sockaddr_in *sin = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (is->family == AF_INET) {
		sin->sin_family = AF_INET;
		*len = sizeof(*sin);
		return inet_pton(AF_INET, ip ? ip : "127.0.0.1", &sin->sin_addr) == 1 ? 0 : -EINVAL;
	}
	sin6->sin6_family = AF_INET6;
	if (ip && is->local->has_scope_id)
		sin6->sin6_scope_id = is->local->scope_id;
	*len = sizeof(*sin6);
	return inet_pton(AF_INET6, ip ? ip : "::1", &sin6->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* A listener on ip (port chosen by the kernel); its address in *ss. */
static int listener_on(const InetSocket *is, const char *ip, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	int lst, err = any_port(is, ip, ss, len);

	if (err)
		return err;
	lst = socket(is->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (lst < 0)
		return -errno;
	if (bind(lst, (struct sockaddr *)ss, *len) || listen(lst, 1) ||
	    getsockname(lst, (struct sockaddr *)ss, len)) {
		err = -errno;
		close(lst);
		return err;
	}
	return lst;
}


/* Accepts the connection and resets it; waits until fd has seen the RST. */
static int reset_peer(int fd, int lst, const char *what)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct pollfd p = { fd, POLLIN, 0 };
	int acc = accept4(lst, NULL, NULL, SOCK_CLOEXEC);

	if (acc < 0)
		return pr_errno(-errno, "%s: cannot accept its connection", what);
	if (setsockopt(acc, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg))) {
		close(acc);
		return pr_errno(-errno, "%s: cannot set SO_LINGER to reset its connection", what);
	}
	close(acc);
	if (poll(&p, 1, 2000) != 1 || !(p.revents & (POLLERR | POLLHUP))) {
		pr_err("%s: its connection was not reset", what);
		return -ETIMEDOUT;
	}
	return 0;
}

int inet_closed_restore(int fd, const InetSocket *is, const char *what)
{
	const char *ip = is->local ? is->local->ip : NULL;
	struct sockaddr_storage ss;
	socklen_t len;
	int lst = listener_on(is, ip, &ss, &len), err;

	if (lst < 0 && ip) {
		pr_info("%s: local address %s is not usable here (%s): the closed connection gets a loopback one",
			what, ip, strerror(-lst));
		ip = NULL;
		lst = listener_on(is, ip, &ss, &len);
	}
	if (lst < 0)
		return pr_errno(lst, "%s: cannot make a listener to build its closed connection", what);
	/*
	 * Not bound first: a connection to a local address comes from that address, and an
	 * explicit bind would set IPV6_V6ONLY (__inet6_bind()) and lock the port.
	 */
	err = connect(fd, (struct sockaddr *)&ss, len) ? -errno : 0;
	if (err)
		pr_errno(err, "%s: cannot connect it to build its closed connection", what);
	else
		err = reset_peer(fd, lst, what);
	close(lst);
	return err;
}
