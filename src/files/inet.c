/*
 * "inet": TCP and UDP sockets over IPv4 and IPv6 that carry no connection state.
 *
 *   TCP  listening (no connection waiting to be accepted), or closed and never connected
 *        (created, perhaps bound): recreated, bound to the same address and port, and put
 *        back to listening with the same backlog. Connections in any other state are refused
 *        at dump with their addresses (established TCP is a later issue).
 *   UDP  unbound, bound or connected, with nothing queued: recreated, bound, connected, and
 *        joined again to its multicast groups with their source filters (inet-mcast.c).
 *
 * Options of every level are saved with getsockopt on our pidfd_getfd copy, which does not
 * change the socket; nothing is ever read from the socket (see inet-dump.c for how queues are
 * checked without consuming them). This file: the kind, its option tables and names; the dump
 * is in inet-dump.c, the restore in inet-restore.c, multicast groups in inet-mcast.c and the
 * sock_diag queries in inet-diag.c.
 *
 * Not saved, because no getsockopt reads them back: an interface given by index to
 * IP_MULTICAST_IF (only its address is readable), TCP_MD5SIG keys, a SO_REUSEPORT group's BPF
 * program, and whether the program bound the socket itself or the kernel did on connect
 * (restore always binds explicitly).
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "files/files.h"
#include "util/util.h"

#define IP_OPT(field, opt, w)   SOCKOPT_INT(InetSkOpts, field, SOL_IP, opt, w)
#define IPV6_OPT(field, opt, w) SOCKOPT_INT(InetSkOpts, field, SOL_IPV6, opt, w)
#define TCP_OPT(field, opt)     SOCKOPT_INT(InetSkOpts, field, IPPROTO_TCP, opt, SOCKOPT_AFTER_BIND)
#define UDP_OPT(field, opt)     SOCKOPT_INT(InetSkOpts, field, IPPROTO_UDP, opt, SOCKOPT_AFTER_BIND)
#define B SOCKOPT_BEFORE_BIND
#define A SOCKOPT_AFTER_BIND

/* SOL_IP: kept in struct inet_sock, so IPv6 sockets have them too. */
const struct sockopt_int inet_ip_opts[] = {
	IP_OPT(ip_freebind, IP_FREEBIND, B),
	IP_OPT(ip_transparent, IP_TRANSPARENT, B),
	IP_OPT(ip_bind_address_no_port, IP_BIND_ADDRESS_NO_PORT, B),
	IP_OPT(ip_tos, IP_TOS, A),
	IP_OPT(ip_ttl, IP_TTL, A),
	IP_OPT(ip_recverr, IP_RECVERR, A),
	IP_OPT(ip_pktinfo, IP_PKTINFO, A),
	IP_OPT(ip_recvtos, IP_RECVTOS, A),
	IP_OPT(ip_recvttl, IP_RECVTTL, A),
	IP_OPT(ip_mtu_discover, IP_MTU_DISCOVER, A),
	IP_OPT(ip_multicast_ttl, IP_MULTICAST_TTL, A),
	IP_OPT(ip_multicast_loop, IP_MULTICAST_LOOP, A),
	IP_OPT(ip_multicast_all, IP_MULTICAST_ALL, A),
	IP_OPT(ip_recvorigdstaddr, IP_RECVORIGDSTADDR, A),
	IP_OPT(ip_minttl, IP_MINTTL, A),
	IP_OPT(ip_unicast_if, IP_UNICAST_IF, A),
	IP_OPT(ip_recverr_rfc4884, IP_RECVERR_RFC4884, A),
	IP_OPT(ip_recvfragsize, IP_RECVFRAGSIZE, A),
	/* reads back the address only (an in_addr, which an int holds), never the index */
	IP_OPT(ip_multicast_if, IP_MULTICAST_IF, A),
};
const size_t inet_nr_ip_opts = ARRAY_SIZE(inet_ip_opts);

const struct sockopt_int inet_ipv6_opts[] = {
	IPV6_OPT(ipv6_v6only, IPV6_V6ONLY, B),
	IPV6_OPT(ipv6_freebind, IPV6_FREEBIND, B),
	IPV6_OPT(ipv6_transparent, IPV6_TRANSPARENT, B),
	IPV6_OPT(ipv6_tclass, IPV6_TCLASS, A),
	IPV6_OPT(ipv6_unicast_hops, IPV6_UNICAST_HOPS, A),
	IPV6_OPT(ipv6_multicast_hops, IPV6_MULTICAST_HOPS, A),
	IPV6_OPT(ipv6_multicast_loop, IPV6_MULTICAST_LOOP, A),
	IPV6_OPT(ipv6_multicast_if, IPV6_MULTICAST_IF, A),
	IPV6_OPT(ipv6_multicast_all, IPV6_MULTICAST_ALL, A),
	IPV6_OPT(ipv6_recvpktinfo, IPV6_RECVPKTINFO, A),
	IPV6_OPT(ipv6_recverr, IPV6_RECVERR, A),
	IPV6_OPT(ipv6_mtu_discover, IPV6_MTU_DISCOVER, A),
	IPV6_OPT(ipv6_recvtclass, IPV6_RECVTCLASS, A),
	IPV6_OPT(ipv6_recvhoplimit, IPV6_RECVHOPLIMIT, A),
	IPV6_OPT(ipv6_autoflowlabel, IPV6_AUTOFLOWLABEL, A),
	IPV6_OPT(ipv6_dontfrag, IPV6_DONTFRAG, A),
	IPV6_OPT(ipv6_recvorigdstaddr, IPV6_RECVORIGDSTADDR, A),
	IPV6_OPT(ipv6_unicast_if, IPV6_UNICAST_IF, A),
	IPV6_OPT(ipv6_addr_preferences, IPV6_ADDR_PREFERENCES, A),
	IPV6_OPT(ipv6_minhopcount, IPV6_MINHOPCOUNT, A),
	IPV6_OPT(ipv6_recverr_rfc4884, IPV6_RECVERR_RFC4884, A),
};
const size_t inet_nr_ipv6_opts = ARRAY_SIZE(inet_ipv6_opts);

/*
 * IPPROTO_TCP. Several read back a sysctl while the program has not set them (TCP_KEEPIDLE,
 * TCP_SYNCNT, TCP_LINGER2...): restore sets an option only where a fresh socket differs, so
 * those keep following the sysctl.
 */
const struct sockopt_int inet_tcp_opts[] = {
	TCP_OPT(tcp_nodelay, TCP_NODELAY),
	TCP_OPT(tcp_cork, TCP_CORK),
	TCP_OPT(tcp_keepidle, TCP_KEEPIDLE),
	TCP_OPT(tcp_keepintvl, TCP_KEEPINTVL),
	TCP_OPT(tcp_keepcnt, TCP_KEEPCNT),
	TCP_OPT(tcp_syncnt, TCP_SYNCNT),
	TCP_OPT(tcp_linger2, TCP_LINGER2),
	TCP_OPT(tcp_defer_accept, TCP_DEFER_ACCEPT),
	TCP_OPT(tcp_window_clamp, TCP_WINDOW_CLAMP),
	TCP_OPT(tcp_user_timeout, TCP_USER_TIMEOUT),
	TCP_OPT(tcp_maxseg, TCP_MAXSEG),
	TCP_OPT(tcp_fastopen, TCP_FASTOPEN),
	TCP_OPT(tcp_fastopen_connect, TCP_FASTOPEN_CONNECT),
	TCP_OPT(tcp_fastopen_no_cookie, TCP_FASTOPEN_NO_COOKIE),
	TCP_OPT(tcp_notsent_lowat, TCP_NOTSENT_LOWAT),
	TCP_OPT(tcp_thin_linear_timeouts, TCP_THIN_LINEAR_TIMEOUTS),
	TCP_OPT(tcp_inq, TCP_INQ),
	TCP_OPT(tcp_save_syn, TCP_SAVE_SYN),
	TCP_OPT(tcp_tx_delay, TCP_TX_DELAY),
};
const size_t inet_nr_tcp_opts = ARRAY_SIZE(inet_tcp_opts);

const struct sockopt_int inet_udp_opts[] = {
	UDP_OPT(udp_cork, UDP_CORK),
	UDP_OPT(udp_segment, UDP_SEGMENT),
	UDP_OPT(udp_gro, UDP_GRO),
	UDP_OPT(udp_no_check6_tx, UDP_NO_CHECK6_TX),
	UDP_OPT(udp_no_check6_rx, UDP_NO_CHECK6_RX),
};
const size_t inet_nr_udp_opts = ARRAY_SIZE(inet_udp_opts);

/* Options whose values are byte strings: IP options and IPv6 sticky extension headers. */
const struct sockopt_bytes inet_ip_bytes[] = {
	SOCKOPT_BYTES(InetSkOpts, ip_options, SOL_IP, IP_OPTIONS),
};
const size_t inet_nr_ip_bytes = ARRAY_SIZE(inet_ip_bytes);

const struct sockopt_bytes inet_ipv6_bytes[] = {
	SOCKOPT_BYTES(InetSkOpts, ipv6_hopopts, SOL_IPV6, IPV6_HOPOPTS),
	SOCKOPT_BYTES(InetSkOpts, ipv6_rthdrdstopts, SOL_IPV6, IPV6_RTHDRDSTOPTS),
	SOCKOPT_BYTES(InetSkOpts, ipv6_rthdr, SOL_IPV6, IPV6_RTHDR),
	SOCKOPT_BYTES(InetSkOpts, ipv6_dstopts, SOL_IPV6, IPV6_DSTOPTS),
};
const size_t inet_nr_ipv6_bytes = ARRAY_SIZE(inet_ipv6_bytes);

const char *inet_proto_name(uint32_t protocol)
{
	return protocol == IPPROTO_TCP ? "TCP" : protocol == IPPROTO_UDP ? "UDP" : "IP";
}

const char *inet_state_name(uint32_t state)
{
	static const char *const names[] = {
		[1] = "ESTABLISHED", [2] = "SYN_SENT", [3] = "SYN_RECV", [4] = "FIN_WAIT1",
		[5] = "FIN_WAIT2", [6] = "TIME_WAIT", [7] = "CLOSE", [8] = "CLOSE_WAIT",
		[9] = "LAST_ACK", [10] = "LISTEN", [11] = "CLOSING", [12] = "NEW_SYN_RECV",
	};

	return state < ARRAY_SIZE(names) && names[state] ? names[state] : "UNKNOWN";
}

void inet_addr_str(const InetSkAddr *a, char *buf, size_t len)
{
	bool v6 = strchr(a->ip, ':') != NULL;
	bool any = !strcmp(a->ip, "0.0.0.0") || !strcmp(a->ip, "::");

	if (any)
		snprintf(buf, len, "*:%u", a->port);
	else
		snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", a->ip, a->port);
}

static bool inet_match(const struct fd_dump_arg *a)
{
	int family = 0;
	socklen_t len = sizeof(family);

	if (!S_ISSOCK(a->st->st_mode) || a->lfd < 0)
		return false;
	if (getsockopt(a->lfd, SOL_SOCKET, SO_DOMAIN, &family, &len))
		return false;
	return family == AF_INET || family == AF_INET6;
}

const struct fd_kind fd_kind_inet = {
	.name = "inet",
	.desc = &inet_socket__descriptor,
	.match = inet_match,
	.dump = inet_dump,
	.open = inet_open,
};
