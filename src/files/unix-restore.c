/*
 * "unix" at restore. Every unix socket of the image is one group (unix.c), so the first
 * unix_open in the creating process builds them all, in this order:
 *
 *   make      every socket: socketpair(2) for connections between unnamed ends; a connection
 *             with a named end through a listener (the real one, or a temporary one on the
 *             name of a listener that was closed), since only accept(2) gives a socket its
 *             listener's name without binding it; listeners; sockets bound to their names.
 *   refill    each receive queue, message by message, sent by its peer, by the socket bound
 *             to the datagram's sender name, or by a temporary socket bound to that name.
 *             A datagram socket connects to its peer only once nothing but the peer has
 *             anything left to send it (a connected datagram socket takes nothing else).
 *   pending   clients of connections not yet accepted connect to their listener, in order.
 *   finish    stand-ins for closed peers are closed (the peer's end sees EOF or
 *             ECONNREFUSED as before), options, SO_PEEK_OFF, shutdown bits, socket files.
 *
 * Each later unix_open hands out the socket of its record.
 */
#define LOG_PREFIX "files/unix: "
#include "files/unix-restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/opts.h"
#include "files/fown.h"
#include "files/sockopt.h"
#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

static struct {
	bool built;
	struct usk *sk;
	size_t nr, handed;
	const struct fd_open_arg *open;	/* while building: how to reach carried entries */
} rst;

const char *unix_sk_name(const struct usk *x, char buf[UNIX_NAME_STR])
{
	return unix_addr_str(x->rec->addr, buf);
}

/* Binds x's own name to fd (x's socket, maybe not stored in x yet). */
static int bind_own(struct usk *x, int fd)
{
	struct uname u;
	char buf[UNIX_NAME_STR];
	bool existed;
	int ret;

	if (!x->rec->addr)
		return 0;
	u = unix_rec_uname(x->rec->addr);
	ret = unix_free_path(&u, &existed);
	if (!ret)
		ret = unix_name_call(fd, &u, UNIX_BIND);
	if (ret)
		return pr_errno(ret, "unix socket %u: cannot bind to %s", x->rec->ino, unix_sk_name(x, buf));
	x->bound = true;
	return 0;
}

bool unix_same_name(const UnixAddr *a, const uint8_t *name, size_t len)
{
	return a && a->name.len == len && !memcmp(a->name.data, name, len);
}

static bool same_addr(const UnixAddr *a, const UnixAddr *b)
{
	return unix_same_name(a, b->name.data, b->name.len) && !a->dir == !b->dir &&
	       (!a->dir || !strcmp(a->dir, b->dir));
}

static struct usk *find_sk(uint32_t ino)
{
	for (size_t i = 0; i < rst.nr; i++)
		if (rst.sk[i].rec->ino == ino)
			return &rst.sk[i];
	return NULL;
}

static struct usk *find_listener(const UnixAddr *addr, uint32_t type)
{
	for (size_t i = 0; addr && i < rst.nr; i++) {
		const UnixSk *r = rst.sk[i].rec;

		if (r->state == TCP_LISTEN && r->type == type && same_addr(r->addr, addr))
			return &rst.sk[i];
	}
	return NULL;
}

/* The datagram socket of the image that bound name itself, if any. */
struct usk *unix_find_dgram_named(const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < rst.nr; i++)
		if (rst.sk[i].rec->type == SOCK_DGRAM && unix_same_name(rst.sk[i].rec->addr, name, len))
			return &rst.sk[i];
	return NULL;
}

int unix_carried_fd(uint32_t id)
{
	for (size_t i = 0; i < rst.nr; i++)
		if (rst.sk[i].id == id && rst.sk[i].fd >= 0)
			return rst.sk[i].fd;
	if (rst.open && rst.open->entry_fd)
		return rst.open->entry_fd(rst.open->entry_arg, id);
	pr_err("file %u, carried by a queued message, was not created", id);
	return -1;
}

/* ---- make: connections ---- */

/* One end of a connection to create: a socket of the image, or a stand-in for a closed peer. */
struct end {
	struct usk *sk;		/* NULL for a stand-in */
	const UnixAddr *addr;	/* its name: its own, or the closed peer's (getpeername) */
	int fd;
};

static int make_listener(struct usk *l)
{
	char buf[UNIX_NAME_STR];
	int ret;

	if (l->fd >= 0)
		return 0;
	l->fd = unix_new_socket(l->rec->type);
	if (l->fd < 0)
		return l->fd;
	ret = bind_own(l, l->fd);
	if (!ret && listen(l->fd, l->rec->backlog))
		ret = pr_errno(-errno, "unix socket %u: cannot listen on %s", l->rec->ino, unix_sk_name(l, buf));
	return ret;
}

/*
 * A connection's accepted end carries its listener's name; the client is the other. With one
 * name only, its holder is the accepted end. With two, a listener of the image on one name
 * tells; failing that, the accepted end is the one with the later inode (connect(2) creates
 * it after its client), and a stand-in for a closed peer is taken for the client.
 */
static void pick_ends(struct end *a, struct end *b, uint32_t type, struct end **acc,
		      struct end **cli)
{
	bool a_acc;

	if (!b->addr || !a->addr)
		a_acc = a->addr != NULL;
	else if (find_listener(a->addr, type) || find_listener(b->addr, type))
		a_acc = find_listener(a->addr, type) != NULL;
	else
		a_acc = !b->sk || a->sk->rec->ino > b->sk->rec->ino;
	*acc = a_acc ? a : b;
	*cli = a_acc ? b : a;
}

static int bind_client(struct end *cli)
{
	if (!cli->addr)
		return 0;
	if (cli->sk)
		return bind_own(cli->sk, cli->fd);
	return unix_temp_bind(cli->fd, cli->addr->name.data, cli->addr->name.len, false);
}

/*
 * The listener for acc's name: the image's own, or a temporary one. A temporary listener on a
 * path leaves its socket file behind as a closed one does, so the file is removed only if the
 * accepted socket's record says it was gone at dump.
 */
static int open_listener(uint32_t type, struct end *acc, int *lfd, int *tmp, struct uname *u)
{
	struct usk *l = find_listener(acc->addr, type);
	bool keep = acc->sk && acc->sk->rec->file_present;
	int ret;

	if (l) {
		*u = unix_rec_uname(l->rec->addr);
		ret = make_listener(l);
		*lfd = l->fd;
		return ret;
	}
	*tmp = *lfd = unix_new_socket(type);
	if (*tmp < 0)
		return *tmp;
	ret = unix_temp_uname(acc->addr->name.data, acc->addr->name.len, u);
	if (!ret)
		ret = unix_temp_bind(*tmp, acc->addr->name.data, acc->addr->name.len, keep);
	if (!ret && listen(*tmp, 1))
		ret = pr_errno(-errno, "cannot listen on a temporary unix socket");
	return ret;
}

static int via_listener(uint32_t type, struct end *acc, struct end *cli)
{
	char buf[UNIX_NAME_STR];
	int lfd = -1, tmp = -1, ret;
	struct uname u;

	ret = open_listener(type, acc, &lfd, &tmp, &u);
	if (!ret) {
		cli->fd = unix_new_socket(type);
		ret = cli->fd < 0 ? cli->fd : bind_client(cli);
	}
	if (!ret) {
		ret = unix_name_call(cli->fd, &u, UNIX_CONNECT);
		if (ret)
			pr_errno(ret, "cannot connect to %s to recreate a connection",
				 unix_addr_str(acc->addr, buf));
	}
	if (!ret) {
		acc->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (acc->fd < 0)
			ret = pr_errno(-errno, "cannot accept on %s to recreate a connection",
				       unix_addr_str(acc->addr, buf));
	}
	safe_close(tmp);
	return ret;
}

/* A stream or seqpacket connection: x and its peer, or x and a stand-in for its closed peer. */
static int make_stream_conn(struct usk *x)
{
	struct end a = { x, x->rec->addr, -1 };
	/* an outside peer's name is its own: the stand-in goes without */
	struct end b = { x->peer, x->peer ? x->peer->rec->addr :
				  x->external ? NULL : x->rec->peer_addr, -1 };
	struct end *acc, *cli;
	int ret = 0, sp[2];

	if (x->peer && (x->peer->fd >= 0 || x->peer->peer != x)) {
		pr_err("files.img: unix socket %u and its peer %u do not agree on their connection",
		       x->rec->ino, x->peer->rec->ino);
		return -EINVAL;
	}
	if (!a.addr && !b.addr) {
		if (socketpair(AF_UNIX, x->rec->type | SOCK_CLOEXEC, 0, sp))
			return pr_errno(-errno, "unix socket %u: socketpair failed", x->rec->ino);
		a.fd = sp[0];
		b.fd = sp[1];
	} else {
		pick_ends(&a, &b, x->rec->type, &acc, &cli);
		ret = via_listener(x->rec->type, acc, cli);
	}
	x->fd = a.fd;
	x->paired = true;
	if (x->peer) {
		x->peer->fd = b.fd;
		x->peer->paired = true;
	} else {
		x->partner = b.fd;
	}
	return ret;
}

/*
 * A datagram socket. One connected to an unnamed socket can only come from socketpair(2)
 * (connect needs a name), names being bound after; so can one whose closed peer had no name,
 * with a stand-in for that peer. The others are plain sockets that connect later.
 */
static int make_dgram(struct usk *x)
{
	struct usk *y = x->peer;
	bool mutual = y && y->rec->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE && y->peer == x;
	bool gone_unnamed = x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_GONE && !x->rec->peer_addr;
	char buf[UNIX_NAME_STR];
	int sp[2], ret;

	if (y && !y->rec->addr && !mutual) {
		pr_err("unix socket %u (%s): connected to unnamed socket %u, which is connected elsewhere: crest cannot recreate that",
		       x->rec->ino, unix_sk_name(x, buf), y->rec->ino);
		return -EOPNOTSUPP;
	}
	if ((mutual && (!x->rec->addr || !y->rec->addr)) || gone_unnamed) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp))
			return pr_errno(-errno, "unix socket %u: socketpair failed", x->rec->ino);
		x->fd = sp[0];
		x->paired = true;
		if (gone_unnamed) {
			x->partner = sp[1];
			return bind_own(x, x->fd);
		}
		y->fd = sp[1];
		y->paired = true;
		ret = bind_own(x, x->fd);
		return ret ? ret : bind_own(y, y->fd);
	}
	x->fd = unix_new_socket(SOCK_DGRAM);
	return x->fd < 0 ? x->fd : bind_own(x, x->fd);
}

/* Everything else: listeners, unconnected sockets, clients of unaccepted connections. */
static int make_plain(struct usk *x)
{
	if (x->rec->state == TCP_LISTEN)
		return make_listener(x);
	x->fd = unix_new_socket(x->rec->type);
	return x->fd < 0 ? x->fd : bind_own(x, x->fd);
}

/*
 * A stream whose peer was outside the tree connects again to that peer's name when it has
 * nothing queued from it; otherwise it gets a stand-in that is closed once the queue is back:
 * the program reads what it had, then EOF, as if the peer had closed.
 */
static bool reconnects(const struct usk *x)
{
	return x->external && x->rec->type != SOCK_DGRAM && x->rec->peer_addr &&
	       (x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_PENDING || !x->rec->n_queue);
}

static bool conn_stream(const struct usk *x)
{
	return x->rec->type != SOCK_DGRAM && !reconnects(x) &&
	       (x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE ||
		x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_GONE);
}

static int make_all(void)
{
	int ret = 0;

	/* connections first: a temporary listener needs its name before anyone else binds it */
	for (size_t i = 0; !ret && i < rst.nr; i++)
		if (rst.sk[i].fd < 0 && conn_stream(&rst.sk[i]))
			ret = make_stream_conn(&rst.sk[i]);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		if (rst.sk[i].fd < 0 && rst.sk[i].rec->type == SOCK_DGRAM)
			ret = make_dgram(&rst.sk[i]);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		if (rst.sk[i].fd < 0)
			ret = make_plain(&rst.sk[i]);
	return ret;
}

/* ---- refill ---- */

static int refill_all(void)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < rst.nr; i++)
		ret = unix_refill(&rst.sk[i]);
	return ret;
}

/* ---- pending connections ---- */

/* Clients of unaccepted connections connect again, in the order the listener had them. */
static int connect_pending(struct usk *l)
{
	struct uname u = unix_rec_uname(l->rec->addr);
	char buf[UNIX_NAME_STR];

	for (size_t i = 0; i < l->rec->n_pending; i++) {
		struct usk *c = find_sk(l->rec->pending[i]);
		int ret;

		if (!c) {
			pr_warn("unix socket %u (%s): its connection not yet accepted from socket:[%u], outside the dumped tree, is gone",
				l->rec->ino, unix_sk_name(l, buf), l->rec->pending[i]);
			continue;
		}
		ret = unix_name_call(c->fd, &u, UNIX_CONNECT);
		if (ret)
			return pr_errno(ret, "unix socket %u: cannot connect to %s again", c->rec->ino,
					unix_sk_name(l, buf));
	}
	return 0;
}

int unix_reconnect_external(struct usk *x)
{
	char buf[UNIX_NAME_STR], to[UNIX_NAME_STR];
	const UnixAddr *pa = x->rec->peer_addr;
	struct uname u;
	int ret;

	if (!pa) {
		pr_warn("unix socket %u (%s): its peer outside the dumped tree had no name: restored disconnected",
			x->rec->ino, unix_sk_name(x, buf));
		return 0;
	}
	u = unix_rec_uname(pa);
	ret = unix_name_call(x->fd, &u, UNIX_CONNECT);
	if (ret)
		pr_warn("unix socket %u (%s): cannot connect again to %s, outside the dumped tree (%s): restored disconnected",
			x->rec->ino, unix_sk_name(x, buf), unix_addr_str(pa, to), strerror(-ret));
	else
		pr_info("unix socket %u (%s): connected again to %s, outside the dumped tree",
			x->rec->ino, unix_sk_name(x, buf), unix_addr_str(pa, to));
	return 0;
}

/* ---- finish ---- */

/*
 * The SOL_SOCKET options, only now: a socket with SO_PASSCRED binds itself a name when it sends
 * or connects, and the refill moved send buffers and peek offsets.
 */
static int set_opts(struct usk *x)
{
	char what[32];
	int ret;

	if (!x->rec->opts)
		return 0;
	snprintf(what, sizeof(what), "unix socket %u", x->rec->ino);
	ret = sockopt_restore_sol(x->fd, x->rec->opts, SOCKOPT_BEFORE_BIND, what);
	return ret ? ret : sockopt_restore_sol(x->fd, x->rec->opts, SOCKOPT_AFTER_BIND, what);
}

/* The socket file of a name x bound: gone if it was gone at dump, else its mode and owner. */
static int fix_file(struct usk *x)
{
	struct uname u;
	char path[UNIX_NAME_MAX + 1];
	int dfd, ret;

	if (!x->bound)
		return 0;
	u = unix_rec_uname(x->rec->addr);
	if (!unix_is_path(&u))
		return 0;
	ret = unix_path_at(&u, path, &dfd);
	if (ret)
		return ret;
	if (!x->rec->file_present && unlinkat(dfd, path, 0))
		ret = pr_errno(-errno, "unix socket %u: cannot unlink %s", x->rec->ino, path);
	else if (x->rec->file_present && x->rec->has_file_mode &&
		 (fchmodat(dfd, path, x->rec->file_mode, 0) ||
		  fchownat(dfd, path, x->rec->file_uid, x->rec->file_gid, AT_SYMLINK_NOFOLLOW)))
		ret = pr_errno(-errno, "unix socket %u: cannot set the mode and owner of %s",
			       x->rec->ino, path);
	if (dfd >= 0)
		close(dfd);
	return ret;
}

static int finish_one(struct usk *x)
{
	static const int how[] = { 0, SHUT_RD, SHUT_WR, SHUT_RDWR };
	int ret;

	/* the peer's end of a closed connection: EOF after the queue (stream), or ECONNREFUSED */
	x->partner = safe_close(x->partner);
	ret = set_opts(x);
	if (!ret && (x->rec->shutdown & 3) && shutdown(x->fd, how[x->rec->shutdown & 3]))
		ret = pr_errno(-errno, "unix socket %u: cannot shut it down", x->rec->ino);
	return ret ? ret : fix_file(x);
}

static int finish_all(void)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < rst.nr; i++)
		if (rst.sk[i].rec->state == TCP_LISTEN)
			ret = connect_pending(&rst.sk[i]);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		if (reconnects(&rst.sk[i]))
			ret = unix_reconnect_external(&rst.sk[i]);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		ret = finish_one(&rst.sk[i]);
	return ret;
}

/* Temporary sockets go, and with them the names they lent and the files they made. */
static void drop_temps(void)
{
	unix_refill_cleanup();
	unix_names_cleanup();
}

/* ---- the records ---- */

/* Whether client r is listed by its listener as a connection not yet accepted. */
static bool pending_on(const UnixSk *r)
{
	struct usk *l = find_sk(r->listener_ino);

	for (size_t i = 0; l && l->rec->state == TCP_LISTEN && i < l->rec->n_pending; i++)
		if (l->rec->pending[i] == r->ino)
			return true;
	return false;
}

static int check_record(const UnixSk *r)
{
	const char *bad = NULL;

	if (r->type != SOCK_STREAM && r->type != SOCK_DGRAM && r->type != SOCK_SEQPACKET)
		bad = "an unknown socket type";
	else if ((r->addr && (!r->addr->name.len || r->addr->name.len > (size_t)UNIX_NAME_MAX)) ||
		 (r->peer_addr && (!r->peer_addr->name.len || r->peer_addr->name.len > (size_t)UNIX_NAME_MAX)))
		bad = "a bad name";
	else if (r->state == TCP_LISTEN && (!r->addr || r->type == SOCK_DGRAM))
		bad = "a listener without a name";
	else if (r->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE && find_sk(r->peer_ino) &&
		 r->type != find_sk(r->peer_ino)->rec->type)
		bad = "a peer of another type";
	for (size_t i = 0; !bad && i < r->n_pending; i++) {
		struct usk *c = find_sk(r->pending[i]);

		if (c && (c->rec->type != r->type || c->rec->peer != UNIX_PEER_STATE__UNIX_PEER_PENDING))
			bad = "a pending connection whose client is no such client";
	}
	for (size_t i = 0; !bad && i < r->n_queue; i++)
		if (r->queue[i]->has_sender && (!r->queue[i]->sender.len ||
						r->queue[i]->sender.len > (size_t)UNIX_NAME_MAX))
			bad = "a queued datagram with a bad sender name";
	if (bad) {
		pr_err("files.img: unix socket %u has %s", r->ino, bad);
		return -EINVAL;
	}
	return 0;
}

static int add_record(const FileEntry *fe)
{
	struct usk *sk = xrealloc(rst.sk, (rst.nr + 1) * sizeof(*sk));
	UnixSk *r;

	if (!sk)
		return -ENOMEM;
	rst.sk = sk;
	r = unix_sk__unpack(NULL, fe->payload.len, fe->payload.data);
	if (!r) {
		pr_err("files.img: entry %u (unix): undecodable record", fe->id);
		return -EINVAL;
	}
	rst.sk[rst.nr++] = (struct usk){ .rec = r, .id = fe->id, .fd = -1, .partner = -1 };
	return 0;
}

/* The first socket x names (peer, listener, pending client) that is not in the image, or 0. */
static uint32_t outside_ino(const struct usk *x)
{
	const UnixSk *r = x->rec;

	if (r->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE && !find_sk(r->peer_ino))
		return r->peer_ino;
	if (r->peer == UNIX_PEER_STATE__UNIX_PEER_PENDING && !pending_on(r))
		return r->listener_ino;
	for (size_t i = 0; i < r->n_pending; i++)
		if (!find_sk(r->pending[i]))
			return r->pending[i];
	return 0;
}

/*
 * x's peer, when the image has it. A dump with --ext-unix-sk keeps sockets whose peer (or
 * listener, or pending client) was outside the tree; they are restored only on request.
 */
static int link_peer(struct usk *x, const struct crest_opts *opts)
{
	uint32_t other = outside_ino(x);
	char buf[UNIX_NAME_STR];

	if (x->rec->peer == UNIX_PEER_STATE__UNIX_PEER_ALIVE)
		x->peer = find_sk(x->rec->peer_ino);
	if (!other)
		return 0;
	if (!opts || !opts->ext_unix_sk) {
		pr_err("unix socket %u (%s) was connected to socket:[%u], outside the dumped tree: restore with --ext-unix-sk",
		       x->rec->ino, unix_sk_name(x, buf), other);
		return -EOPNOTSUPP;
	}
	/* a listener loses its pending connections from outside; the others reconnect */
	x->external = x->rec->state != TCP_LISTEN;
	return 0;
}

/* Every unix record of files.img: building one socket needs the others. */
static int load_records(struct img_dir *dir, const struct crest_opts *opts)
{
	struct img *img = img_open(dir, IMG_MAGIC_FILES, "files.img");
	int ret = 0;

	if (!img)
		return pr_errno(-errno, "cannot read files.img again for the unix sockets");
	while (!ret) {
		FileEntry *fe;

		ret = img_read(img, file_entry, &fe);
		if (ret || !fe)
			break;
		if (!strcmp(fe->kind, "unix"))
			ret = add_record(fe);
		file_entry__free_unpacked(fe, NULL);
	}
	img_close(img);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		ret = check_record(rst.sk[i].rec);
	for (size_t i = 0; !ret && i < rst.nr; i++)
		ret = link_peer(&rst.sk[i], opts);
	return ret;
}

static void free_all(void)
{
	drop_temps();
	for (size_t i = 0; i < rst.nr; i++) {
		safe_close(rst.sk[i].fd);
		safe_close(rst.sk[i].partner);
		unix_sk__free_unpacked(rst.sk[i].rec, NULL);
	}
	free(rst.sk);
	rst.sk = NULL;
	rst.nr = rst.handed = 0;
}

static int build_all(const struct fd_open_arg *a)
{
	int ret = load_records(a->dir, a->opts);

	pr_info("pid %d: creating the %zu unix sockets of the image", a->pid, rst.nr);
	if (!ret)
		ret = make_all();
	rst.open = a;
	if (!ret)
		ret = refill_all();
	rst.open = NULL;
	if (!ret)
		ret = finish_all();
	drop_temps();
	rst.built = true;
	return ret;
}

int unix_open(const struct fd_open_arg *a, const ProtobufCMessage *rec)
{
	const UnixSk *us = (const UnixSk *)rec;
	char what[32];
	struct usk *x;
	int fd, ret;

	/* build_all logged what failed */
	if (!rst.built) {
		ret = build_all(a);
		if (ret)
			return ret;
	}
	x = find_sk(us->ino);
	if (!x || x->fd < 0) {
		pr_err("pid %d: unix socket %u was not created (or is handed out twice)", a->pid, us->ino);
		return -EINVAL;
	}
	fd = x->fd;
	x->fd = -1;
	/* O_ASYNC comes last, from fown_restore, once its owner is set */
	if (fcntl(fd, F_SETFL, us->flags & ~(O_ACCMODE | O_ASYNC)) < 0) {
		ret = pr_errno(-errno, "pid %d: cannot set flags %#o on unix socket %u", a->pid,
			       us->flags, us->ino);
		close(fd);
		return ret;
	}
	snprintf(what, sizeof(what), "unix socket %u", us->ino);
	ret = fown_restore(fd, us->fown, us->flags, a->pid, what);
	if (ret < 0)
		close(fd);
	if (++rst.handed == rst.nr)
		free_all();
	return ret;
}
