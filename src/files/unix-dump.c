/*
 * "unix" at dump: what one AF_UNIX socket is, from sock_diag and getsockopt/getpeername on our
 * copy of its description (all read-only), and its receive queue read with MSG_PEEK; the
 * descriptors in flight that the peek hands crest are saved through the fd table.
 *
 * Peers are known by inode only once every process was dumped, so unix_dump_finish checks that
 * each connection's other end is in the image and fails the dump naming it when it is not.
 */
#define LOG_PREFIX "files/unix: "
#include "files/unix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/opts.h"
#include "files/fown.h"
#include "files/sockdiag.h"
#include "files/sockopt.h"
#include "image/img.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

/* First receive buffer for a queued message; grown to the size of a longer datagram. */
#define PEEK_BUF_START (64 * 1024)

/* What sock_diag says about one unix socket (UDIAG_SHOW_* attributes). */
struct unix_diag {
	uint32_t ino, type, state;
	uint8_t name[UNIX_NAME_MAX];
	size_t name_len;		/* 0: no address */
	bool has_vfs;
	uint32_t vfs_ino;		/* inode of the socket file of a path name */
	uint32_t peer;			/* inode of the live peer, 0 when none or gone */
	uint32_t rqueue, wqueue;	/* listener: queued connections, backlog; else bytes */
	uint8_t shutdown;
	uint32_t *icons;		/* listener: the clients of unaccepted connections */
	size_t nr_icons;
};

/* A dumped socket, for the checks once the whole tree is dumped. */
struct dumped_sk {
	pid_t pid;
	int fd;
	uint32_t ino;
	UnixPeerState peer;
	uint32_t peer_ino, listener_ino;
	uint32_t *pending;
	size_t nr_pending;
	char name[UNIX_NAME_STR], peer_name[UNIX_NAME_STR];
};

static struct {
	struct dumped_sk *sk;
	size_t nr, cap;
	bool ext_ok;			/* --ext-unix-sk: peers outside the tree are allowed */
} dumped;

bool unix_match(const struct fd_dump_arg *a)
{
	int domain;
	socklen_t len = sizeof(domain);

	if (!S_ISSOCK(a->st->st_mode) || a->lfd < 0)
		return false;
	return !getsockopt(a->lfd, SOL_SOCKET, SO_DOMAIN, &domain, &len) && domain == AF_UNIX;
}

/* A path name as diag and recvfrom report it ends with the NUL bind added: drop it. */
static size_t name_len(const uint8_t *name, size_t len)
{
	return len && name[0] ? strnlen((const char *)name, len) : len;
}

static int copy_icons(struct unix_diag *ud, const struct rtattr *a)
{
	ud->nr_icons = RTA_PAYLOAD(a) / sizeof(uint32_t);
	ud->icons = xmalloc(ud->nr_icons * sizeof(uint32_t) + 1);
	if (!ud->icons)
		return -ENOMEM;
	memcpy(ud->icons, RTA_DATA(a), ud->nr_icons * sizeof(uint32_t));
	return 0;
}

static int parse_diag(const struct nlmsghdr *h, void *arg)
{
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	const struct rtattr *tb[UNIX_DIAG_MAX + 1];
	struct unix_diag *ud = arg;

	sockdiag_attrs(h, sizeof(*m), tb, UNIX_DIAG_MAX);
	ud->ino = m->udiag_ino;
	ud->type = m->udiag_type;
	ud->state = m->udiag_state;
	if (tb[UNIX_DIAG_NAME]) {
		ud->name_len = MIN(RTA_PAYLOAD(tb[UNIX_DIAG_NAME]), sizeof(ud->name));
		memcpy(ud->name, RTA_DATA(tb[UNIX_DIAG_NAME]), ud->name_len);
		ud->name_len = name_len(ud->name, ud->name_len);
	}
	if (tb[UNIX_DIAG_VFS]) {
		ud->has_vfs = true;
		ud->vfs_ino = ((const struct unix_diag_vfs *)RTA_DATA(tb[UNIX_DIAG_VFS]))->udiag_vfs_ino;
	}
	if (tb[UNIX_DIAG_PEER])
		ud->peer = *(const uint32_t *)RTA_DATA(tb[UNIX_DIAG_PEER]);
	if (tb[UNIX_DIAG_RQLEN]) {
		ud->rqueue = ((const struct unix_diag_rqlen *)RTA_DATA(tb[UNIX_DIAG_RQLEN]))->udiag_rqueue;
		ud->wqueue = ((const struct unix_diag_rqlen *)RTA_DATA(tb[UNIX_DIAG_RQLEN]))->udiag_wqueue;
	}
	if (tb[UNIX_DIAG_SHUTDOWN])
		ud->shutdown = *(const uint8_t *)RTA_DATA(tb[UNIX_DIAG_SHUTDOWN]);
	return tb[UNIX_DIAG_ICONS] ? copy_icons(ud, tb[UNIX_DIAG_ICONS]) : 0;
}

static void unix_diag_req_init(struct unix_diag_req *req, uint32_t ino, uint32_t states)
{
	memset(req, 0, sizeof(*req));
	req->sdiag_family = AF_UNIX;
	req->udiag_states = states;
	req->udiag_ino = ino;
	req->udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS |
			  UDIAG_SHOW_RQLEN;
	/* INET_DIAG_NOCOOKIE: no cookie to match */
	req->udiag_cookie[0] = req->udiag_cookie[1] = ~0U;
}

/* sock_diag's exact lookup by inode (unix_diag_get_exact); -ENOENT when no such socket lives. */
static int diag_lookup(uint32_t ino, struct unix_diag *ud)
{
	struct unix_diag_req req;

	memset(ud, 0, sizeof(*ud));
	unix_diag_req_init(&req, ino, ~0U);
	return sockdiag_query(&req, sizeof(req), false, parse_diag, ud);
}

/* For find_listener: the client looked for and, once found, its listener. */
struct icons_search {
	uint32_t client, listener;
};

static int match_icons(const struct nlmsghdr *h, void *arg)
{
	struct icons_search *s = arg;
	struct unix_diag ud = { 0 };
	int ret = parse_diag(h, &ud);

	for (size_t i = 0; !ret && i < ud.nr_icons; i++)
		if (ud.icons[i] == s->client) {
			s->listener = ud.ino;
			ret = 1;
		}
	free(ud.icons);
	return ret;
}

/*
 * A client whose connection is not accepted yet has no live peer for sock_diag: its peer is
 * the embryo socket in the listener's queue, which has no inode. The listener lists its
 * clients (UNIX_DIAG_ICONS), so ask every listening socket of the namespace.
 */
static int find_listener(uint32_t client, uint32_t *ret)
{
	struct icons_search s = { client, 0 };
	struct unix_diag_req req;
	int err;

	unix_diag_req_init(&req, 0, 1U << TCP_LISTEN);
	req.udiag_show = UDIAG_SHOW_ICONS;
	err = sockdiag_query(&req, sizeof(req), true, match_icons, &s);
	*ret = s.listener;
	return err < 0 ? err : 0;
}

static UnixAddr *new_addr(const uint8_t *name, size_t len, const char *dir)
{
	UnixAddr *ua = xzalloc(sizeof(*ua));

	if (!ua)
		return NULL;
	unix_addr__init(ua);
	ua->name.data = xmalloc(len);
	ua->name.len = len;
	if (ua->name.data)
		memcpy(ua->name.data, name, len);
	if (dir)
		ua->dir = xstrdup(dir);
	if (!ua->name.data || (dir && !ua->dir)) {
		unix_addr__free_unpacked(ua, NULL);
		return NULL;
	}
	return ua;
}

/* An address record; a relative path is tied to the directory it is resolved in (our cwd). */
static int make_addr(pid_t pid, const uint8_t *name, size_t len, UnixAddr **ret)
{
	char link[64], cwd[PATH_MAX];
	ssize_t n = 0;

	if (name[0] && name[0] != '/') {
		snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
		n = readlink(link, cwd, sizeof(cwd) - 1);
		if (n < 0)
			return pr_errno(-errno, "pid %d: cannot read %s for a relative socket name", pid, link);
		cwd[n] = '\0';
	}
	*ret = new_addr(name, len, n ? cwd : NULL);
	return *ret ? 0 : -ENOMEM;
}

/*
 * The socket file of a path name, seen from the process (its root or cwd). It counts as present
 * only if it is the file this socket was bound to (UNIX_DIAG_VFS's inode): a name whose file
 * was unlinked or replaced is restored bound and then unlinked.
 */
static void dump_file(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	char path[PATH_MAX + 64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/%s/%.*s", a->pid, ud->name[0] == '/' ? "root" : "cwd",
		 (int)ud->name_len, (const char *)ud->name);
	us->has_file_present = true;
	us->file_present = ud->has_vfs && !stat(path, &st) && S_ISSOCK(st.st_mode) &&
			   st.st_ino == ud->vfs_ino;
	if (!us->file_present)
		return;
	us->has_file_mode = us->has_file_uid = us->has_file_gid = true;
	us->file_mode = st.st_mode & 07777;
	us->file_uid = st.st_uid;
	us->file_gid = st.st_gid;
}

static int dump_name(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	int ret;

	if (!ud->name_len)
		return 0;
	ret = make_addr(a->pid, ud->name, ud->name_len, &us->addr);
	if (!ret && ud->name[0])
		dump_file(a, ud, us);
	return ret;
}

/* getpeername(2): 0 with *len 0 when the peer has no name, -ENOTCONN when not connected. */
static int peer_name(const struct fd_dump_arg *a, uint8_t *name, size_t *len)
{
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);

	if (getpeername(a->lfd, (struct sockaddr *)&sa, &sl))
		return -errno;
	*len = sl > offsetof(struct sockaddr_un, sun_path) ?
	       name_len((uint8_t *)sa.sun_path, sl - offsetof(struct sockaddr_un, sun_path)) : 0;
	memcpy(name, sa.sun_path, *len);
	return 0;
}

/*
 * A connected socket without a live peer (UNIX_DIAG_PEER is 0 for a closed socket, which has
 * no inode any more): either its peer was closed, or, for a stream client, the peer is the
 * embryo of a connection its listener has not accepted yet.
 */
static int dump_lost_peer(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	uint32_t listener = 0;
	int ret = 0;

	if (ud->type != SOCK_DGRAM)
		ret = find_listener(ud->ino, &listener);
	if (ret)
		return pr_errno(ret, "pid %d fd %d: cannot look for the listener of a unix socket",
				a->pid, a->fd);
	us->peer = listener ? UNIX_PEER_STATE__UNIX_PEER_PENDING : UNIX_PEER_STATE__UNIX_PEER_GONE;
	us->has_listener_ino = listener != 0;
	us->listener_ino = listener;
	/*
	 * What a client sent to an embryo waits in the embryo's queue, which no descriptor reaches;
	 * the client's send buffer still counts it (UNIX_DIAG_RQLEN's wqueue is sk_wmem_alloc).
	 */
	if (listener && ud->wqueue) {
		pr_err("pid %d fd %d: unix socket has sent data on a connection its listener has not accepted yet: crest cannot read that data",
		       a->pid, a->fd);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int dump_peer(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	uint8_t name[UNIX_NAME_MAX];
	size_t len = 0;
	int ret;

	us->peer = UNIX_PEER_STATE__UNIX_PEER_NONE;
	if (ud->state == TCP_LISTEN)
		return 0;
	ret = peer_name(a, name, &len);
	if (ret == -ENOTCONN)
		return 0;
	if (ret)
		return pr_errno(ret, "pid %d fd %d: getpeername on a unix socket failed", a->pid, a->fd);
	if (len) {
		ret = make_addr(a->pid, name, len, &us->peer_addr);
		if (ret)
			return ret;
	}
	if (!ud->peer)
		return dump_lost_peer(a, ud, us);
	us->peer = UNIX_PEER_STATE__UNIX_PEER_ALIVE;
	us->has_peer_ino = true;
	us->peer_ino = ud->peer;
	return 0;
}

static int dump_listener(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	char buf[UNIX_NAME_STR];

	us->has_backlog = true;
	us->backlog = ud->wqueue;
	for (size_t i = 0; i < ud->nr_icons; i++) {
		/* the embryo's queue may hold what the closed client sent: unreadable */
		if (!ud->icons[i]) {
			pr_err("pid %d fd %d: listening unix socket %s has a connection not yet accepted whose client has closed: crest cannot read what it sent",
			       a->pid, a->fd, unix_name_str(ud->name, ud->name_len, buf));
			return -EOPNOTSUPP;
		}
	}
	us->pending = ud->icons;
	us->n_pending = ud->nr_icons;
	return 0;
}

static int get_int_opt(const struct fd_dump_arg *a, int opt, const char *what, int *val)
{
	socklen_t len = sizeof(*val);

	if (getsockopt(a->lfd, SOL_SOCKET, opt, val, &len))
		return pr_errno(-errno, "pid %d fd %d: cannot read %s of a unix socket", a->pid, a->fd, what);
	return 0;
}

static int dump_opts(const struct fd_dump_arg *a, UnixSk *us)
{
	char what[48];

	snprintf(what, sizeof(what), "pid %d fd %d", a->pid, a->fd);
	return sockopt_dump_sol(a->lfd, &us->opts, what);
}

/* Where the queue walk stands: the buffer and the peek offset reached. */
struct peek_walk {
	const struct fd_dump_arg *a;
	UnixSk *us;
	uint8_t *buf;
	size_t cap;
	int off;
};

static int set_peek_off(const struct fd_dump_arg *a, int off)
{
	if (setsockopt(a->lfd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)))
		return pr_errno(-errno, "pid %d fd %d: cannot set SO_PEEK_OFF on a unix socket", a->pid, a->fd);
	return 0;
}

/* Closes the copies of descriptors in flight that a MSG_PEEK installed in crest. */
static void close_rights(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		int *fds = (int *)CMSG_DATA(c);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
			close(fds[i]);
	}
}

/*
 * The descriptors a message carries (SCM_RIGHTS). The MSG_PEEK installed copies of them in
 * crest (unix_peek_fds() duplicates the references; the queue keeps its own): the fd table
 * saves each as a file entry and keeps the copy until the end of the dump. A socket that is
 * itself in flight and carries descriptors would need its queue restored before it can be
 * sent: refused.
 */
static int save_rights(struct peek_walk *w, const int *fds, size_t nr, UnixMsg *um)
{
	const struct fd_dump_arg *a = w->a;
	uint32_t *ids = xrealloc(um->files, (um->n_files + nr) * sizeof(*ids) + 1);
	int ret = 0;
	size_t i;

	if (ids)
		um->files = ids;
	else
		ret = -ENOMEM;
	if (ids && a->via_pid) {
		pr_err("pid %d fd %d: unix socket has a unix socket in flight (SCM_RIGHTS) in its receive queue that carries descriptors in flight itself: crest cannot save descriptors nested in flight",
		       a->via_pid, a->via_fd);
		ret = -EOPNOTSUPP;
	}
	for (i = 0; !ret && i < nr; i++)
		ret = a->save_carried(a, fds[i], &um->files[um->n_files++]);
	/* save_carried took fds[0..i) whatever it returned; the rest are ours to close */
	for (; i < nr; i++)
		close(fds[i]);
	return ret;
}

/* Control messages of a peeked message: credentials and descriptors are kept. */
static int peek_cmsgs(struct peek_walk *w, struct msghdr *m, UnixMsg *um)
{
	int ret = 0;

	if (m->msg_flags & MSG_CTRUNC) {
		close_rights(m);
		pr_err("pid %d fd %d: unix socket has a message in its receive queue whose control data does not fit %zu bytes: crest cannot save it",
		       w->a->pid, w->a->fd, (size_t)m->msg_controllen);
		return -EOPNOTSUPP;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;

			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			um->has_pid = um->has_uid = um->has_gid = true;
			um->pid = pidns_view(cr.pid);	/* crest's view: the tree's */
			um->uid = cr.uid;
			um->gid = cr.gid;
		} else if (c->cmsg_type == SCM_RIGHTS && !ret) {
			ret = save_rights(w, (int *)CMSG_DATA(c),
					  (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), um);
		} else if (c->cmsg_type == SCM_RIGHTS) {
			/* the copies after a failure are closed all the same */
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
				close(((int *)CMSG_DATA(c))[i]);
		}
	}
	return ret;
}

static int add_msg(struct peek_walk *w, UnixMsg *um, size_t len, const struct sockaddr_un *sa,
		   socklen_t sl)
{
	UnixSk *us = w->us;
	size_t slen = sl > offsetof(struct sockaddr_un, sun_path) ?
		      name_len((const uint8_t *)sa->sun_path, sl - offsetof(struct sockaddr_un, sun_path)) : 0;
	UnixMsg **q = xrealloc(us->queue, (us->n_queue + 1) * sizeof(*q));
	UnixMsg *copy = xmalloc(sizeof(*copy));

	if (q)
		us->queue = q;
	if (!q || !copy) {
		free(copy);
		free(um->files);
		return -ENOMEM;
	}
	*copy = *um;
	copy->data.len = len;
	copy->data.data = xmalloc(len + 1);
	if (slen && us->type == SOCK_DGRAM) {
		copy->has_sender = true;
		copy->sender.len = slen;
		copy->sender.data = xmalloc(slen);
		if (copy->sender.data)
			memcpy(copy->sender.data, sa->sun_path, slen);
	}
	us->queue[us->n_queue++] = copy;
	if (!copy->data.data || (copy->has_sender && !copy->sender.data))
		return -ENOMEM;
	memcpy(copy->data.data, w->buf, len);
	return 0;
}

/*
 * recvmsg(MSG_PEEK) of the message at the walk's offset, whole. MSG_TRUNC makes a datagram
 * report its full length even when the buffer is shorter; the peek offset then moved by the
 * buffer's size only, so it is put back and the message read again into a buffer that fits.
 * (A stream has no message to cut: it never gets MSG_TRUNC, which it would not understand.)
 */
static ssize_t peek_recv(struct peek_walk *w, struct msghdr *m)
{
	bool stream = w->us->type == SOCK_STREAM;
	int flags = MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (stream ? 0 : MSG_TRUNC);
	size_t namelen = m->msg_namelen, controllen = m->msg_controllen;

	for (;;) {
		struct iovec iov = { w->buf, w->cap };
		uint8_t *bigger;
		ssize_t n;
		int ret;

		m->msg_iov = &iov;
		m->msg_iovlen = 1;
		m->msg_namelen = namelen;
		m->msg_controllen = controllen;
		n = recvmsg(w->a->lfd, m, flags);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -EAGAIN :
			       pr_errno(-errno, "pid %d fd %d: cannot peek at a unix socket's queue",
					w->a->pid, w->a->fd);
		if ((size_t)n <= w->cap)
			return n;
		/* descriptors in this message, if any, were installed here: the retry gets them again */
		close_rights(m);
		bigger = xrealloc(w->buf, n);
		if (!bigger)
			return -ENOMEM;
		w->buf = bigger;
		w->cap = n;
		ret = set_peek_off(w->a, w->off);
		if (ret)
			return ret;
	}
}

/* Peeks the next message: 1 when one was added, 0 at the end of the queue, or -errno. */
static int peek_one(struct peek_walk *w)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(UNIX_SCM_MAX_FD * sizeof(int))];
	UnixMsg um = UNIX_MSG__INIT;
	struct sockaddr_un sa;
	struct msghdr m = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	ssize_t n = peek_recv(w, &m);
	int ret;

	if (n == -EAGAIN)
		return 0;
	if (n < 0)
		return n;
	ret = peek_cmsgs(w, &m, &um);
	if (ret) {
		free(um.files);
		return ret;
	}
	/* 0 bytes: end of stream, or end of a queue whose receive side is shut down */
	if (!n && (w->us->type == SOCK_STREAM || (w->us->shutdown & 1)))
		return 0;
	w->off += n;
	ret = add_msg(w, &um, n, &sa, m.msg_namelen);
	return ret ? ret : 1;
}

/*
 * Out-of-band data (MSG_OOB, 5.15) would come back as a plain byte of the stream, its mark
 * lost. A MSG_OOB|MSG_PEEK read tells whether there is some without taking it (it fails with
 * EINVAL when there is none).
 */
static int check_oob(const struct fd_dump_arg *a, const UnixSk *us)
{
	char c;

	if (us->type != SOCK_STREAM || recv(a->lfd, &c, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) != 1)
		return 0;
	pr_err("pid %d fd %d: unix socket has out-of-band data (MSG_OOB) in its receive queue: crest cannot save it",
	       a->pid, a->fd);
	return -EOPNOTSUPP;
}

/*
 * The receive queue, message by message: with SO_PEEK_OFF set (the kernel keeps it for unix
 * sockets for exactly this), each MSG_PEEK starts where the previous one ended, so the whole
 * queue is read while the socket keeps all of it. The target's own SO_PEEK_OFF is saved first
 * and put back after, whatever happens.
 *
 * A datagram of 0 bytes is marked "peeked" by the first MSG_PEEK that reaches it and skipped by
 * later walks with an offset (__skb_try_recv_from_queue()), so only the first dump sees it.
 */
static int dump_queue(const struct fd_dump_arg *a, UnixSk *us)
{
	struct peek_walk w = { a, us, xmalloc(PEEK_BUF_START), PEEK_BUF_START, 0 };
	int saved, ret, ret2;

	if (!w.buf)
		return -ENOMEM;
	ret = check_oob(a, us);
	if (!ret)
		ret = get_int_opt(a, SO_PEEK_OFF, "SO_PEEK_OFF", &saved);
	if (ret)
		goto out_free;
	ret = set_peek_off(a, 0);
	if (!ret)
		do
			ret = peek_one(&w);
		while (ret == 1);
	ret2 = set_peek_off(a, saved);
	ret = ret < 0 ? ret : ret2;
out_free:
	free(w.buf);
	return ret;
}

static int remember(const struct fd_dump_arg *a, const UnixSk *us)
{
	char buf[UNIX_NAME_STR];
	struct dumped_sk *d;

	dumped.ext_ok = a->opts && a->opts->ext_unix_sk;
	if (xgrow((void **)&dumped.sk, &dumped.cap, dumped.nr + 1, sizeof(*dumped.sk)))
		return -ENOMEM;
	d = &dumped.sk[dumped.nr];
	memset(d, 0, sizeof(*d));
	d->pending = xmalloc(us->n_pending * sizeof(uint32_t) + 1);
	if (!d->pending)
		return -ENOMEM;
	dumped.nr++;
	memcpy(d->pending, us->pending, us->n_pending * sizeof(uint32_t));
	d->nr_pending = us->n_pending;
	/* a socket in flight is named by the socket whose queue holds it */
	d->pid = a->via_pid ? a->via_pid : a->pid;
	d->fd = a->via_pid ? a->via_fd : a->fd;
	d->ino = us->ino;
	d->peer = us->peer;
	d->peer_ino = us->peer_ino;
	d->listener_ino = us->listener_ino;
	/* unix_addr_str writes to the buffer given, or returns a constant */
	snprintf(d->name, sizeof(d->name), "%s", unix_addr_str(us->addr, buf));
	snprintf(d->peer_name, sizeof(d->peer_name), "%s", unix_addr_str(us->peer_addr, buf));
	return 0;
}

static int dump_sk(const struct fd_dump_arg *a, const struct unix_diag *ud, UnixSk *us)
{
	int ret;

	us->ino = ud->ino;
	us->type = ud->type;
	us->state = ud->state;
	us->flags = a->flags;
	us->has_shutdown = true;
	us->shutdown = ud->shutdown;
	ret = dump_name(a, ud, us);
	if (!ret)
		ret = dump_peer(a, ud, us);
	if (!ret && ud->state == TCP_LISTEN)
		ret = dump_listener(a, ud, us);
	if (!ret)
		ret = dump_opts(a, us);
	if (!ret)
		ret = fown_dump(a, &us->fown);
	/* a stream that is not connected has no queue, and recvmsg says EINVAL */
	if (!ret && (ud->type == SOCK_DGRAM || ud->state == TCP_ESTABLISHED))
		ret = dump_queue(a, us);
	return ret ? ret : remember(a, us);
}

int unix_dump(const struct fd_dump_arg *a, ProtobufCMessage **ret)
{
	struct unix_diag ud;
	char what[48];
	UnixSk *us;
	int err;

	/* sock_diag answers for crest's network namespace only */
	snprintf(what, sizeof(what), "pid %d fd %d", a->pid, a->fd);
	err = sockopt_check_netns(a->lfd, what);
	if (err)
		return err;
	err = diag_lookup(a->st->st_ino, &ud);
	if (err)
		return pr_errno(err, "pid %d fd %d: sock_diag does not know unix socket %s", a->pid, a->fd,
				a->link);
	if (ud.type != SOCK_STREAM && ud.type != SOCK_DGRAM && ud.type != SOCK_SEQPACKET) {
		pr_err("pid %d fd %d: unix socket %s has type %u, which crest does not know", a->pid,
		       a->fd, a->link, ud.type);
		free(ud.icons);
		return -EOPNOTSUPP;
	}
	us = xmalloc(sizeof(*us));
	if (!us) {
		free(ud.icons);
		return -ENOMEM;
	}
	unix_sk__init(us);
	/* us->pending takes ud.icons when it is a listener */
	err = dump_sk(a, &ud, us);
	if (us->pending != ud.icons)
		free(ud.icons);
	if (err) {
		unix_sk__free_unpacked(us, NULL);
		return err;
	}
	*ret = &us->base;
	return 0;
}

/* ---- once every process is dumped ---- */

static struct dumped_sk *find_dumped(uint32_t ino)
{
	for (size_t i = 0; i < dumped.nr; i++)
		if (dumped.sk[i].ino == ino)
			return &dumped.sk[i];
	return NULL;
}

/* Whether process pid has a descriptor whose link is want ("socket:[N]"). */
static bool holds(pid_t pid, const char *want)
{
	char path[64], link[64];
	struct dirent *fe;
	bool found = false;
	DIR *fds;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	fds = opendir(path);
	while (fds && !found && (fe = readdir(fds))) {
		ssize_t n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);

		found = n > 0 && (size_t)n == strlen(want) && !memcmp(link, want, n);
	}
	if (fds)
		closedir(fds);
	return found;
}

/* A process outside the tree that holds socket ino (for the message), or 0. */
static pid_t find_holder(uint32_t ino)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;
	char want[32];
	pid_t found = 0;

	snprintf(want, sizeof(want), "socket:[%u]", ino);
	while (proc && !found && (de = readdir(proc))) {
		pid_t pid = atoi(de->d_name);

		if (pid > 0 && holds(pid, want))
			found = pid;
	}
	if (proc)
		closedir(proc);
	return found;
}

/*
 * A peer outside the tree fails the dump, naming it and (if found) its holder, unless
 * --ext-unix-sk allows it: the restore then reconnects to the peer's name or restores the
 * socket disconnected (unix-restore.c), and a warning says what will happen.
 */
static int outside(const struct dumped_sk *d, const char *what, uint32_t other, const char *name)
{
	pid_t holder = find_holder(other);
	char by[48] = "";

	if (holder)
		snprintf(by, sizeof(by), " held by pid %d", holder);
	if (dumped.ext_ok) {
		pr_warn("pid %d fd %d: unix socket socket:[%u] (%s) %s socket:[%u] (%s)%s, outside the dumped tree: restore will need --ext-unix-sk",
			d->pid, d->fd, d->ino, d->name, what, other, name, by);
		return 0;
	}
	pr_err("pid %d fd %d: unix socket socket:[%u] (%s) %s socket:[%u] (%s)%s, which is outside the dumped tree: crest restores only connections with both ends in the tree (or use --ext-unix-sk)",
	       d->pid, d->fd, d->ino, d->name, what, other, name, by);
	return -EOPNOTSUPP;
}

static int check_one(const struct dumped_sk *d)
{
	int ret = 0;

	if (d->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE && !find_dumped(d->peer_ino))
		ret = outside(d, "is connected to", d->peer_ino, d->peer_name);
	if (!ret && d->peer == UNIX_PEER_STATE__UNIX_PEER_PENDING && !find_dumped(d->listener_ino))
		ret = outside(d, "waits to be accepted by", d->listener_ino, d->peer_name);
	for (size_t i = 0; !ret && i < d->nr_pending; i++)
		if (!find_dumped(d->pending[i]))
			ret = outside(d, "has a connection not yet accepted from", d->pending[i],
				      "its client");
	return ret;
}

static void forget_all(void)
{
	for (size_t i = 0; i < dumped.nr; i++)
		free(dumped.sk[i].pending);
	free(dumped.sk);
	memset(&dumped, 0, sizeof(dumped));
}

/* Peers can be checked only once every process was dumped; a failed dump just forgets. */
int unix_dump_finish(struct img_dir *dir, bool complete)
{
	int ret = 0;

	for (size_t i = 0; !ret && complete && i < dumped.nr; i++)
		ret = check_one(&dumped.sk[i]);
	forget_all();
	return ret;
}
