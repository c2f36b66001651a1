/*
 * "unix" at restore: receive queues. Each message goes back by sendmsg(2) from a socket that
 * gives it what the receiver saw: stream and seqpacket data from the peer (or the stand-in of a
 * closed peer); a datagram from the image's socket bound to its sender name, from a temporary
 * socket bound to that name when the sender is gone, or from an unbound socket when the sender
 * had no name. SCM_CREDENTIALS go along as recorded, and SCM_RIGHTS with the descriptions in
 * flight, which this process created before the sockets (fd_kind.carried).
 */
#define LOG_PREFIX "files/unix: "
#include "files/unix-restore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

/* A temporary socket bound to a name no socket of the image holds (a closed sender). */
struct tmp_sender {
	uint8_t name[UNIX_NAME_MAX];
	size_t len;
	int fd;
};

static struct {
	int anon;			/* unbound: sends the datagrams of unnamed senders */
	struct tmp_sender *senders;
	size_t nr_senders;
} refill = { .anon = -1 };

/*
 * A queue that filled up its sender's send buffer once may not fit in the buffer of the socket
 * sending it now (a stand-in, or a peer whose SO_SNDBUF is set only at finish): the buffer
 * doubles for the message, then goes back to size (val is what setsockopt takes: half).
 */
static int set_sndbuf(int fd, int val)
{
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &val, sizeof(val)))
		return pr_errno(-errno, "cannot resize the send buffer of a unix socket to %d", val);
	return 0;
}

static int grow_sndbuf(int fd, int *orig)
{
	socklen_t len = sizeof(*orig);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, orig, &len))
		return pr_errno(-errno, "cannot read the send buffer size of a unix socket");
	*orig /= 2;
	return set_sndbuf(fd, *orig * 4);
}

/* The kernel's SCM_MAX_FD (include/net/scm.h): the most descriptors one message carries. */
#define UNIX_SCM_MAX_FD 253

/* The descriptors m carries (SCM_RIGHTS), each its restored entry's. 0 or -errno after logging. */
static int carried_fds(const struct usk *x, const UnixMsg *m, int fds[UNIX_SCM_MAX_FD])
{
	if (m->n_files > UNIX_SCM_MAX_FD) {
		pr_err("unix socket %u: a queued message carries %zu descriptors, more than SCM_MAX_FD",
		       x->rec->ino, m->n_files);
		return -EINVAL;
	}
	for (size_t i = 0; i < m->n_files; i++) {
		fds[i] = unix_carried_fd(m->files[i]);
		if (fds[i] < 0) {
			pr_err("unix socket %u: cannot put back file %u, carried by a queued message",
			       x->rec->ino, m->files[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* Appends a control message of the given type and payload to mh's control buffer. */
static void add_cmsg(struct msghdr *mh, int type, const void *data, size_t len)
{
	struct cmsghdr *c = (struct cmsghdr *)((char *)mh->msg_control + mh->msg_controllen);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(len);
	memcpy(CMSG_DATA(c), data, len);
	mh->msg_controllen += CMSG_SPACE(len);
}

/*
 * Sends m from fd, to dest if given. Its SCM_CREDENTIALS go along as they were (root may
 * name any live pid and any ids); a sender pid that no longer exists falls back to crest's.
 * nr_fds descriptors go along (SCM_RIGHTS) when given: with the first bytes only.
 */
static ssize_t send_one(int fd, const UnixMsg *m, size_t off, const struct uname *dest, bool creds,
			const int *fds, size_t nr_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(UNIX_SCM_MAX_FD * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct ucred cr = { m->pid, m->uid, m->gid };
	struct sockaddr_un sa;
	struct iovec iov = { m->data.data + off, m->data.len - off };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf };
	int cwd = -1;
	ssize_t n;

	memset(&cbuf, 0, sizeof(cbuf));
	if (creds)
		add_cmsg(&mh, SCM_CREDENTIALS, &cr, sizeof(cr));
	if (nr_fds)
		add_cmsg(&mh, SCM_RIGHTS, fds, nr_fds * sizeof(int));
	if (!mh.msg_controllen)
		mh.msg_control = NULL;
	if (dest) {
		mh.msg_name = &sa;
		mh.msg_namelen = unix_make_sa(dest, &sa);
		if (unix_enter_dir(dest, &cwd))
			return -EIO;
	}
	n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	n = n < 0 ? -errno : n;
	unix_leave_dir(cwd);
	return n;
}

static int send_msg(struct usk *x, int fd, const UnixMsg *m, const struct uname *dest)
{
	bool creds = m->has_pid;
	char buf[UNIX_NAME_STR];
	int fds[UNIX_SCM_MAX_FD];
	int orig = 0, ret = carried_fds(x, m, fds);
	size_t off = 0;

	if (ret)
		return ret;
	do {
		ssize_t n = send_one(fd, m, off, dest, creds, fds, off ? 0 : m->n_files);

		if (n == -ESRCH && creds) {
			pr_warn("unix socket %u (%s): sender pid %u of a queued message is gone: its credentials name the restoring process instead",
				x->rec->ino, unix_sk_name(x, buf), m->pid);
			creds = false;
		} else if (n == -EAGAIN && !orig) {
			ret = grow_sndbuf(fd, &orig);
		} else if (n < 0) {
			ret = pr_errno(n, "unix socket %u (%s): cannot put a queued message back",
				       x->rec->ino, unix_sk_name(x, buf));
		} else {
			off += n;
		}
	} while (!ret && off < m->data.len);
	if (orig)
		ret = ret ? ret : set_sndbuf(fd, orig);
	return ret;
}

static int refill_stream(struct usk *x)
{
	int from = x->peer ? x->peer->fd : x->partner;
	char buf[UNIX_NAME_STR];
	int ret = 0;

	if (!x->rec->n_queue)
		return 0;
	if (from < 0) {
		pr_err("unix socket %u (%s): has queued data but no peer to send it from", x->rec->ino,
		       unix_sk_name(x, buf));
		return -EINVAL;
	}
	for (size_t i = 0; !ret && i < x->rec->n_queue; i++)
		ret = send_msg(x, from, x->rec->queue[i], NULL);
	return ret;
}

/* The name of x's (final) peer, or NULL when it is unnamed or there is none. */
static const UnixAddr *peer_addr(const struct usk *x)
{
	return x->peer ? x->peer->rec->addr : x->rec->peer_addr;
}

static bool has_peer(const struct usk *x)
{
	return x->peer || x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_GONE || x->external;
}

/* Whether m came from x's peer, which will send it again. A peer outside the tree will not. */
static bool from_peer(const struct usk *x, const UnixMsg *m)
{
	const UnixAddr *pa = peer_addr(x);

	if (!has_peer(x) || x->external)
		return false;
	return m->has_sender ? unix_same_name(pa, m->sender.data, m->sender.len) : !pa;
}

/* A temporary datagram socket bound to name, made once per name. */
static int temp_sender(const uint8_t *name, size_t len, int *ret_fd)
{
	struct tmp_sender *s;
	int fd, ret;

	for (size_t i = 0; i < refill.nr_senders; i++)
		if (refill.senders[i].len == len && !memcmp(refill.senders[i].name, name, len)) {
			*ret_fd = refill.senders[i].fd;
			return 0;
		}
	s = xrealloc(refill.senders, (refill.nr_senders + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	refill.senders = s;
	fd = unix_new_socket(SOCK_DGRAM);
	if (fd < 0)
		return fd;
	ret = unix_temp_bind(fd, name, len, false);
	if (ret) {
		close(fd);
		return ret;
	}
	s = &refill.senders[refill.nr_senders++];
	memcpy(s->name, name, len);
	s->len = len;
	s->fd = *ret_fd = fd;
	return 0;
}

/* The socket that stands for x's peer: the peer, a stand-in made with it, or one bound now. */
static int dgram_peer_fd(struct usk *x, int *fd)
{
	const UnixAddr *pa = x->rec->peer_addr;

	*fd = x->peer ? x->peer->fd : x->partner;
	if (*fd >= 0 || x->rec->peer != UNIX_PEER_STATE__UNIX_PEER_GONE || !pa)
		return 0;
	return temp_sender(pa->name.data, pa->name.len, fd);
}

static int anon_sender(int *fd)
{
	if (refill.anon < 0)
		refill.anon = unix_new_socket(SOCK_DGRAM);
	*fd = refill.anon;
	return refill.anon < 0 ? refill.anon : 0;
}

/*
 * Who sends datagram m to x: x's peer when it sent it; the image's socket bound to the sender
 * name; a temporary socket bound to it (the sender was closed); an unbound socket for an
 * unnamed sender. A name held outside the tree cannot be borrowed: the datagram then arrives
 * from an unnamed sender, and a warning says so.
 */
static int dgram_sender(struct usk *x, const UnixMsg *m, int *fd)
{
	char buf[UNIX_NAME_STR], from[UNIX_NAME_STR];
	struct usk *y;

	if (from_peer(x, m))
		return dgram_peer_fd(x, fd);
	if (!m->has_sender)
		return anon_sender(fd);
	y = unix_find_dgram_named(m->sender.data, m->sender.len);
	if (y) {
		*fd = y->fd;
		return 0;
	}
	if (!temp_sender(m->sender.data, m->sender.len, fd))
		return 0;
	pr_warn("unix socket %u (%s): a queued datagram from %s comes back from an unnamed sender",
		x->rec->ino, unix_sk_name(x, buf), unix_name_str(m->sender.data, m->sender.len, from));
	return anon_sender(fd);
}

static int connect_dgram(struct usk *x)
{
	const UnixAddr *pa = peer_addr(x);
	char buf[UNIX_NAME_STR], to[UNIX_NAME_STR];
	struct uname u;
	int fd, ret;

	if (x->paired || !has_peer(x))
		return 0;
	x->paired = true;
	if (x->external)
		return unix_reconnect_external(x);
	if (x->peer) {
		u = unix_rec_uname(pa);
	} else {
		/* a closed named peer: connect to a stand-in bound to its name, closed at the end */
		ret = dgram_peer_fd(x, &fd);
		if (!ret)
			ret = unix_temp_uname(pa->name.data, pa->name.len, &u);
		if (ret)
			return ret;
	}
	ret = unix_name_call(x->fd, &u, UNIX_CONNECT);
	if (ret)
		return pr_errno(ret, "unix socket %u (%s): cannot connect to %s", x->rec->ino,
				unix_sk_name(x, buf), unix_addr_str(pa, to));
	return 0;
}

/*
 * A datagram socket's queue, in order. Until x is connected anyone may send to it (within
 * net.unix.max_dgram_qlen, as when the queue formed); once connected, only its peer, without
 * that limit. So x connects right after the last datagram that did not come from its peer.
 */
static int refill_dgram(struct usk *x)
{
	struct uname dest, *to = NULL;
	size_t peer_only = 0;	/* from here on, every datagram came from the peer */
	int fd, ret = 0;

	for (size_t i = 0; i < x->rec->n_queue; i++)
		if (!from_peer(x, x->rec->queue[i]))
			peer_only = i + 1;
	if (x->rec->addr) {
		dest = unix_rec_uname(x->rec->addr);
		to = &dest;
	}
	if (!to && peer_only) {
		pr_err("unix socket %u: an unnamed datagram socket with datagrams from others than its peer: crest cannot send them to it",
		       x->rec->ino);
		return -EINVAL;
	}
	for (size_t i = 0; !ret && i < x->rec->n_queue; i++) {
		if (i == peer_only)
			ret = connect_dgram(x);
		if (!ret)
			ret = dgram_sender(x, x->rec->queue[i], &fd);
		if (!ret)
			ret = send_msg(x, fd, x->rec->queue[i], to);
	}
	return ret ? ret : connect_dgram(x);
}

int unix_refill(struct usk *x)
{
	return x->rec->type == SOCK_DGRAM ? refill_dgram(x) : refill_stream(x);
}

void unix_refill_cleanup(void)
{
	refill.anon = safe_close(refill.anon);
	for (size_t i = 0; i < refill.nr_senders; i++)
		safe_close(refill.senders[i].fd);
	free(refill.senders);
	refill.senders = NULL;
	refill.nr_senders = 0;
}
