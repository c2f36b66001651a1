/*
 * "netlink": AF_NETLINK sockets (rtnetlink, generic netlink, uevents, ...).
 *
 * What a netlink socket holds that a program relies on is where it is bound and what it
 * listens to, so that is what is saved: the protocol, the port id (getsockname nl_pid), the
 * multicast groups (NETLINK_LIST_MEMBERSHIPS, Linux 4.2, gives all of them; getsockname's
 * nl_groups only the first 32), the connected peer (getpeername), and the options.
 *
 * The port id is restored by binding to it explicitly. A socket bound with nl_pid 0 was given
 * one by the kernel: the process's tgid for its first netlink socket, a negative number for
 * the next ones. The restored process has the same pid, so its own tgid is free unless another
 * socket of the network namespace has taken it meanwhile; then the restore fails naming it.
 *
 * Refused at dump, since they cannot be put back: messages waiting to be read (they came from
 * the kernel or another socket, and nothing can queue them again as from that sender), a
 * pending error (an overrun's ENOBUFS, which reading SO_ERROR would clear), and a dump request
 * still in progress (its position lives in the kernel). /proc/net/netlink shows the last two
 * per socket inode ("Rmem" bytes queued, "Dump" in progress) for bound sockets; poll(2) tells
 * the rest without reading anything.
 */
#define LOG_PREFIX "files/netlink: "
#include "files/files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "files/sockopt.h"
#include "netlink.pb-c.h"
#include "util/log.h"
#include "util/util.h"

#define NL_OPT(field, opt) SOCKOPT_INT(NetlinkSocket, field, SOL_NETLINK, opt, SOCKOPT_AFTER_BIND)

static const struct sockopt_int netlink_opts[] = {
	NL_OPT(pktinfo, NETLINK_PKTINFO),
	NL_OPT(broadcast_error, NETLINK_BROADCAST_ERROR),
	NL_OPT(no_enobufs, NETLINK_NO_ENOBUFS),
	NL_OPT(listen_all_nsid, NETLINK_LISTEN_ALL_NSID),
	NL_OPT(cap_ack, NETLINK_CAP_ACK),
	NL_OPT(ext_ack, NETLINK_EXT_ACK),
	NL_OPT(get_strict_chk, NETLINK_GET_STRICT_CHK),
};

static const char *proto_name(uint32_t protocol)
{
	static const char *const names[] = {
		[NETLINK_ROUTE] = "NETLINK_ROUTE", [NETLINK_USERSOCK] = "NETLINK_USERSOCK",
		[NETLINK_SOCK_DIAG] = "NETLINK_SOCK_DIAG", [NETLINK_NFLOG] = "NETLINK_NFLOG",
		[NETLINK_XFRM] = "NETLINK_XFRM", [NETLINK_SELINUX] = "NETLINK_SELINUX",
		[NETLINK_AUDIT] = "NETLINK_AUDIT", [NETLINK_CONNECTOR] = "NETLINK_CONNECTOR",
		[NETLINK_NETFILTER] = "NETLINK_NETFILTER",
		[NETLINK_KOBJECT_UEVENT] = "NETLINK_KOBJECT_UEVENT",
		[NETLINK_GENERIC] = "NETLINK_GENERIC", [NETLINK_CRYPTO] = "NETLINK_CRYPTO",
	};

	return protocol < ARRAY_SIZE(names) && names[protocol] ? names[protocol] : "netlink";
}

static bool netlink_match(const struct fd_dump_arg *a)
{
	int family = 0;
	socklen_t len = sizeof(family);

	if (!S_ISSOCK(a->st->st_mode) || a->lfd < 0)
		return false;
	return !getsockopt(a->lfd, SOL_SOCKET, SO_DOMAIN, &family, &len) && family == AF_NETLINK;
}

/* One socket being dumped. */
struct nl_dump {
	const struct fd_dump_arg *a;
	NetlinkSocket *ns;
	char what[48];		/* "pid 12 fd 3" */
};

static __attribute__((format(printf, 2, 3))) int refuse(const struct nl_dump *d,
							 const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("%s: %s socket (port id %u): %s: cannot checkpoint it yet", d->what,
	       proto_name(d->ns->protocol), d->ns->portid, msg);
	return -EOPNOTSUPP;
}

/* "Rmem" and "Dump" of the socket with inode ino in /proc/self/net/netlink (crest's netns). */
static int proc_netlink(const struct nl_dump *d, uint64_t *rmem, int *dumping)
{
	_cleanup_free_ char *text = read_file_at(AT_FDCWD, "/proc/self/net/netlink", NULL);
	char *line, *save = NULL;

	if (!text)
		return pr_errno(-errno, "%s: cannot read /proc/self/net/netlink", d->what);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long r, ino;
		int dump;

		/* sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode */
		if (sscanf(line, "%*s %*d %*d %*x %llu %*u %d %*d %*d %llu", &r, &dump, &ino) != 3 ||
		    ino != d->a->st->st_ino)
			continue;
		*rmem = r;
		*dumping = dump;
		return 0;
	}
	pr_err("%s: socket inode %llu is not in /proc/self/net/netlink", d->what,
	       (unsigned long long)d->a->st->st_ino);
	return -ENOENT;
}

static int check_idle(const struct nl_dump *d)
{
	struct pollfd p = { d->a->lfd, POLLIN, 0 };
	uint64_t rmem = 0;
	int dumping = 0, err;

	if (poll(&p, 1, 0) < 0)
		return pr_errno(-errno, "%s: poll failed", d->what);
	if (p.revents & POLLERR)
		return refuse(d, "a pending error (ENOBUFS after an overrun?)");
	/* only bound sockets are in the table; an unbound one cannot have sent a request */
	err = d->ns->has_portid ? proc_netlink(d, &rmem, &dumping) : 0;
	if (err)
		return err;
	if (dumping)
		return refuse(d, "a dump request still in progress");
	if ((p.revents & POLLIN) || rmem)
		return refuse(d, "messages waiting to be read (%" PRIu64 " bytes)", rmem);
	return 0;
}

static int read_addrs(const struct nl_dump *d)
{
	struct sockaddr_nl nl;
	socklen_t len = sizeof(nl);
	NetlinkSocket *ns = d->ns;

	if (getsockname(d->a->lfd, (struct sockaddr *)&nl, &len))
		return pr_errno(-errno, "%s: getsockname failed", d->what);
	ns->has_portid = nl.nl_pid != 0;
	ns->portid = nl.nl_pid;
	len = sizeof(nl);
	if (getpeername(d->a->lfd, (struct sockaddr *)&nl, &len))
		return pr_errno(-errno, "%s: getpeername failed", d->what);
	ns->has_dst_portid = ns->has_dst_groups = nl.nl_pid || nl.nl_groups;
	ns->dst_portid = nl.nl_pid;
	ns->dst_groups = nl.nl_groups;
	return 0;
}

/* Every group, as the bitmap NETLINK_LIST_MEMBERSHIPS gives (len says how much it holds). */
static int read_groups(const struct nl_dump *d)
{
	socklen_t len = 0, got;
	uint32_t *words;

	if (getsockopt(d->a->lfd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, NULL, &len))
		return pr_errno(-errno, "%s: cannot list its multicast groups", d->what);
	if (!len)
		return 0;
	words = xzalloc(len);
	if (!words)
		return -ENOMEM;
	got = len;
	if (getsockopt(d->a->lfd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, words, &got) || got > len) {
		free(words);
		return pr_errno(-(errno ? errno : EAGAIN), "%s: cannot list its multicast groups", d->what);
	}
	d->ns->groups = words;
	d->ns->n_groups = len / sizeof(*words);
	return 0;
}

static int read_identity(const struct nl_dump *d)
{
	int type = 0, protocol = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(d->a->lfd, SOL_SOCKET, SO_TYPE, &type, &len) ||
	    getsockopt(d->a->lfd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len))
		return pr_errno(-errno, "%s: cannot read the socket's type and protocol", d->what);
	d->ns->type = type;
	d->ns->protocol = protocol;
	return 0;
}

static int netlink_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct nl_dump d = { .a = a };
	int err;

	snprintf(d.what, sizeof(d.what), "pid %d fd %d", a->pid, a->fd);
	d.ns = xmalloc(sizeof(*d.ns));
	if (!d.ns)
		return -ENOMEM;
	netlink_socket__init(d.ns);
	d.ns->flags = a->flags;
	d.ns->has_ino = true;
	d.ns->ino = a->st->st_ino;
	err = read_identity(&d);
	if (!err)
		err = sockopt_check_netns(a->lfd, d.what);
	if (!err)
		err = read_addrs(&d);
	if (!err)
		err = check_idle(&d);
	if (!err)
		err = read_groups(&d);
	if (!err)
		err = sockopt_dump_sol(a->lfd, &d.ns->sk, d.what);
	if (!err)
		err = sockopt_dump_ints(a->lfd, netlink_opts, ARRAY_SIZE(netlink_opts), d.ns, d.what);
	if (err) {
		netlink_socket__free_unpacked(d.ns, NULL);
		return err;
	}
	*ret = &d.ns->base;
	return 0;
}

/* ---- restore ---- */

/* Groups beyond the first 32 (bind's nl_groups takes those), or all when not bound. */
static int add_groups(int fd, const NetlinkSocket *ns, const char *what)
{
	size_t first = ns->has_portid ? 1 : 0;

	for (size_t w = first; w < ns->n_groups; w++) {
		for (int bit = 0; bit < 32; bit++) {
			int group = w * 32 + bit + 1;

			if (!(ns->groups[w] & (1u << bit)))
				continue;
			if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)))
				return pr_errno(-errno, "%s: cannot join multicast group %d", what, group);
		}
	}
	return 0;
}

static int do_bind(int fd, const NetlinkSocket *ns, const char *what)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };

	if (!ns->has_portid)
		return 0;
	nl.nl_pid = ns->portid;
	nl.nl_groups = ns->n_groups ? ns->groups[0] : 0;
	if (!bind(fd, (struct sockaddr *)&nl, sizeof(nl)))
		return 0;
	if (errno == EADDRINUSE)
		pr_err("%s: port id %u is taken by another netlink socket of this network namespace",
		       what, ns->portid);
	else
		pr_perror("%s: cannot bind to port id %u, groups %#x", what, ns->portid,
			  nl.nl_groups);
	return -errno;
}

static int do_connect(int fd, const NetlinkSocket *ns, const char *what)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };

	if (!ns->has_dst_portid)
		return 0;
	nl.nl_pid = ns->dst_portid;
	nl.nl_groups = ns->has_dst_groups ? ns->dst_groups : 0;
	if (connect(fd, (struct sockaddr *)&nl, sizeof(nl)))
		return pr_errno(-errno, "%s: cannot connect to port id %u, groups %#x", what,
				nl.nl_pid, nl.nl_groups);
	return 0;
}

static int restore_steps(int fd, const NetlinkSocket *ns, const char *what)
{
	int err = sockopt_restore_sol(fd, ns->sk, SOCKOPT_BEFORE_BIND, what);

	if (!err)
		err = do_bind(fd, ns, what);
	if (!err)
		err = add_groups(fd, ns, what);
	if (!err)
		err = sockopt_restore_sol(fd, ns->sk, SOCKOPT_AFTER_BIND, what);
	if (!err)
		err = sockopt_restore_ints(fd, netlink_opts, ARRAY_SIZE(netlink_opts), ns,
					   SOCKOPT_AFTER_BIND, what);
	if (!err)
		err = do_connect(fd, ns, what);
	if (!err && fcntl(fd, F_SETFL, ns->flags & ~O_ACCMODE) < 0)
		err = pr_errno(-errno, "%s: cannot set file flags %#o", what, ns->flags);
	return err;
}

static int netlink_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const NetlinkSocket *ns = (const NetlinkSocket *)rec;
	char what[96];
	int fd, err;

	snprintf(what, sizeof(what), "pid %d: %s socket (port id %u)", a->pid,
		 proto_name(ns->protocol), ns->portid);
	if (!ns->sk) {
		pr_err("%s: files.img entry %u has no socket options", what, a->id);
		return -EINVAL;
	}
	fd = socket(AF_NETLINK, ns->type | SOCK_CLOEXEC, ns->protocol);
	if (fd < 0)
		return pr_errno(-errno, "%s: cannot create the socket", what);
	err = restore_steps(fd, ns, what);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

const struct fd_kind fd_kind_netlink = {
	.name = "netlink",
	.desc = &netlink_socket__descriptor,
	.match = netlink_match,
	.dump = netlink_dump,
	.open = netlink_open,
};
