/*
 * "unsupported-socket": every socket of a family no other kind takes (AF_PACKET, AF_ALG,
 * AF_VSOCK, AF_XDP, AF_BLUETOOTH, ...). It exists only to refuse them at dump with a message
 * that says what the socket is, instead of the generic "cannot checkpoint this kind of
 * descriptor". AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK are left to their own kinds, so the
 * order of the kinds table does not matter.
 */
#define LOG_PREFIX "files/socket: "
#include "files/files.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sockopt.pb-c.h"
#include "util/log.h"
#include "util/util.h"

static const char *family_name(int family)
{
	static const char *const names[] = {
		[AF_UNIX] = "AF_UNIX", [AF_INET] = "AF_INET", [AF_AX25] = "AF_AX25",
		[AF_IPX] = "AF_IPX", [AF_APPLETALK] = "AF_APPLETALK", [AF_INET6] = "AF_INET6",
		[AF_KEY] = "AF_KEY", [AF_NETLINK] = "AF_NETLINK", [AF_PACKET] = "AF_PACKET",
		[AF_RDS] = "AF_RDS", [AF_LLC] = "AF_LLC", [AF_IB] = "AF_IB", [AF_MPLS] = "AF_MPLS",
		[AF_CAN] = "AF_CAN", [AF_TIPC] = "AF_TIPC", [AF_BLUETOOTH] = "AF_BLUETOOTH",
		[AF_ALG] = "AF_ALG", [AF_VSOCK] = "AF_VSOCK", [AF_KCM] = "AF_KCM",
		[AF_QIPCRTR] = "AF_QIPCRTR", [AF_SMC] = "AF_SMC", [AF_XDP] = "AF_XDP",
	};

	return family >= 0 && family < (int)ARRAY_SIZE(names) && names[family] ? names[family] : NULL;
}

static const char *type_name(int type)
{
	static const char *const names[] = {
		[SOCK_STREAM] = "SOCK_STREAM", [SOCK_DGRAM] = "SOCK_DGRAM", [SOCK_RAW] = "SOCK_RAW",
		[SOCK_RDM] = "SOCK_RDM", [SOCK_SEQPACKET] = "SOCK_SEQPACKET",
		[SOCK_DCCP] = "SOCK_DCCP", [SOCK_PACKET] = "SOCK_PACKET",
	};

	return type >= 0 && type < (int)ARRAY_SIZE(names) && names[type] ? names[type] : NULL;
}

static int sock_int(int fd, int opt)
{
	int val = -1;
	socklen_t len = sizeof(val);

	return getsockopt(fd, SOL_SOCKET, opt, &val, &len) ? -1 : val;
}

static bool unsupported_match(const struct fd_dump_arg *a)
{
	int family;

	if (!S_ISSOCK(a->st->st_mode) || a->lfd < 0)
		return false;
	family = sock_int(a->lfd, SO_DOMAIN);
	return family != AF_UNIX && family != AF_INET && family != AF_INET6 &&
	       family != AF_NETLINK;
}

static int unsupported_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	int family = sock_int(a->lfd, SO_DOMAIN), type = sock_int(a->lfd, SO_TYPE);
	char fbuf[16], tbuf[16];
	const char *f = family_name(family), *t = type_name(type);

	if (!f)
		snprintf(fbuf, sizeof(fbuf), "%d", family);
	if (!t)
		snprintf(tbuf, sizeof(tbuf), "%d", type);
	pr_err("pid %d fd %d: socket of family %s type %s: cannot checkpoint it yet", a->pid, a->fd,
	       f ? f : fbuf, t ? t : tbuf);
	return -EOPNOTSUPP;
}

/* Never reached from a dump of ours: only a hand-made image can name this kind. */
static int unsupported_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	pr_err("pid %d: files.img entry %u is an unsupported socket, which crest never saves", a->pid,
	       a->id);
	return -EINVAL;
}

const struct fd_kind fd_kind_unsupported_socket = {
	.name = "unsupported-socket",
	/* no record of its own is ever written; any message type will do to decode one */
	.desc = &sol_socket_opts__descriptor,
	.match = unsupported_match,
	.dump = unsupported_dump,
	.open = unsupported_open,
};
