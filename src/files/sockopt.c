/*
 * Socket options shared by the socket kinds: see sockopt.h.
 *
 * Kernel behaviour relied on (net/core/sock.c):
 *  - getsockopt never changes the socket, so reading through our pidfd_getfd copy is safe;
 *    the one exception, SO_ERROR, which clears the pending error, is never read here.
 *  - SO_RCVBUF/SO_SNDBUF store max(2 * val, minimum) and report that, so the value set again
 *    is half the saved one. Above net.core.rmem_max/wmem_max only SO_RCVBUFFORCE/
 *    SO_SNDBUFFORCE (CAP_NET_ADMIN) reach it. Setting either also sets its bit of
 *    sk_userlocks, which stops TCP's automatic sizing; SO_BUF_LOCK (5.14) reads and writes
 *    those bits, so a buffer the program never sized is left to the kernel again.
 *  - SO_LINGER reports l_linger even while lingering is off; it is set on, then off.
 *  - SO_RCVTIMEO/SO_SNDTIMEO are kept in jiffies and read back rounded to them, so a value
 *    read and set again gives the same jiffies.
 *  - SO_GET_FILTER gives back the classic BPF program as attached (counts are in
 *    instructions, not bytes); an eBPF program (SO_ATTACH_BPF) has none and gives EACCES.
 */
#define LOG_PREFIX "files/sockopt: "
#include "files/sockopt.h"

#include <errno.h>
#include <linux/filter.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "util/log.h"
#include "util/util.h"

#define SOCK_SNDBUF_LOCK 1	/* include/net/sock.h: sk_userlocks bits, as SO_BUF_LOCK shows */
#define SOCK_RCVBUF_LOCK 2

static const struct sockopt_int sol_ints[] = {
	SOCKOPT_INT(SolSocketOpts, reuseaddr, SOL_SOCKET, SO_REUSEADDR, SOCKOPT_BEFORE_BIND),
	SOCKOPT_INT(SolSocketOpts, reuseport, SOL_SOCKET, SO_REUSEPORT, SOCKOPT_BEFORE_BIND),
	SOCKOPT_INT(SolSocketOpts, keepalive, SOL_SOCKET, SO_KEEPALIVE, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, broadcast, SOL_SOCKET, SO_BROADCAST, SOCKOPT_AFTER_BIND),
	/* after the buffers: TCP caps the low mark at half the receive buffer */
	SOCKOPT_INT(SolSocketOpts, rcvlowat, SOL_SOCKET, SO_RCVLOWAT, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, priority, SOL_SOCKET, SO_PRIORITY, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, mark, SOL_SOCKET, SO_MARK, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, oobinline, SOL_SOCKET, SO_OOBINLINE, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, dontroute, SOL_SOCKET, SO_DONTROUTE, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, passcred, SOL_SOCKET, SO_PASSCRED, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, timestamp, SOL_SOCKET, SO_TIMESTAMP, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, timestampns, SOL_SOCKET, SO_TIMESTAMPNS, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, timestamping, SOL_SOCKET, SO_TIMESTAMPING, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, rxq_ovfl, SOL_SOCKET, SO_RXQ_OVFL, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, peek_off, SOL_SOCKET, SO_PEEK_OFF, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, busy_poll, SOL_SOCKET, SO_BUSY_POLL, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, zerocopy, SOL_SOCKET, SO_ZEROCOPY, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, select_err_queue, SOL_SOCKET, SO_SELECT_ERR_QUEUE,
		    SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, passsec, SOL_SOCKET, SO_PASSSEC, SOCKOPT_AFTER_BIND),
	SOCKOPT_INT(SolSocketOpts, rcvmark, SOL_SOCKET, SO_RCVMARK, SOCKOPT_AFTER_BIND),
};

/* Errors meaning "this socket has no such option", as opposed to a failure. */
static bool not_applicable(int err)
{
	return err == ENOPROTOOPT || err == EOPNOTSUPP || err == EINVAL;
}

static int get_int(int sk, int level, int opt, int *val)
{
	socklen_t len = sizeof(*val);

	*val = 0;
	return getsockopt(sk, level, opt, val, &len) ? -errno : 0;
}

int sockopt_dump_ints(int sk, const struct sockopt_int *t, size_t n, void *msg, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		int val, err = get_int(sk, t[i].level, t[i].opt, &val);

		if (err && not_applicable(-err))
			continue;
		if (err)
			return pr_errno(err, "%s: cannot read socket option %s", what, t[i].name);
		*(int32_t *)((char *)msg + t[i].off) = val;
		*(protobuf_c_boolean *)((char *)msg + t[i].has_off) = true;
	}
	return 0;
}

/* Sets one integer option unless the socket already has the value; then checks it stuck. */
static int restore_int(int sk, const struct sockopt_int *o, int want, const char *what)
{
	int now, err = get_int(sk, o->level, o->opt, &now);

	if (!err && now == want)
		return 0;
	if (setsockopt(sk, o->level, o->opt, &want, sizeof(want)))
		return pr_errno(-errno, "%s: cannot set socket option %s to %d", what, o->name, want);
	err = get_int(sk, o->level, o->opt, &now);
	if (err)
		return pr_errno(err, "%s: cannot read back socket option %s", what, o->name);
	if (now != want) {
		pr_err("%s: socket option %s is %d after setting it to %d", what, o->name, now, want);
		return -EINVAL;
	}
	return 0;
}

int sockopt_restore_ints(int sk, const struct sockopt_int *t, size_t n, const void *msg,
			 enum sockopt_when when, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const char *m = msg;
		int err;

		if (t[i].when != when || !*(const protobuf_c_boolean *)(m + t[i].has_off))
			continue;
		err = restore_int(sk, &t[i], *(const int32_t *)(m + t[i].off), what);
		if (err)
			return err;
	}
	return 0;
}

int sockopt_verify_ints(int sk, const struct sockopt_int *t, size_t n, const void *msg,
			const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const char *m = msg;
		int want = *(const int32_t *)(m + t[i].off), now;

		if (!*(const protobuf_c_boolean *)(m + t[i].has_off))
			continue;
		if (get_int(sk, t[i].level, t[i].opt, &now) || now != want) {
			pr_err("%s: socket option %s is %d once all are set, want %d", what, t[i].name,
			       now, want);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- byte-string options ---- */

#define SOCKOPT_BYTES_MAX 2048	/* IPv6 extension headers reach 2048 bytes, IP options 40 */

int sockopt_dump_bytes(int sk, const struct sockopt_bytes *t, size_t n, void *msg,
		       const char *what)
{
	_cleanup_free_ uint8_t *buf = xmalloc(SOCKOPT_BYTES_MAX);

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ProtobufCBinaryData *b = (void *)((char *)msg + t[i].off);
		socklen_t len = SOCKOPT_BYTES_MAX;

		if (getsockopt(sk, t[i].level, t[i].opt, buf, &len)) {
			if (not_applicable(errno))
				continue;
			return pr_errno(-errno, "%s: cannot read socket option %s", what, t[i].name);
		}
		if (!len)
			continue;
		b->data = xmalloc(len);
		if (!b->data)
			return -ENOMEM;
		memcpy(b->data, buf, len);
		b->len = len;
		*(protobuf_c_boolean *)((char *)msg + t[i].has_off) = true;
	}
	return 0;
}

int sockopt_restore_bytes(int sk, const struct sockopt_bytes *t, size_t n, const void *msg,
			  const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const ProtobufCBinaryData *b = (const void *)((const char *)msg + t[i].off);
		uint8_t now[SOCKOPT_BYTES_MAX];
		socklen_t len = sizeof(now);

		if (!*(const protobuf_c_boolean *)((const char *)msg + t[i].has_off) || !b->len)
			continue;
		if (setsockopt(sk, t[i].level, t[i].opt, b->data, b->len))
			return pr_errno(-errno, "%s: cannot set socket option %s (%zu bytes)", what,
					t[i].name, b->len);
		if (getsockopt(sk, t[i].level, t[i].opt, now, &len) || len != b->len ||
		    memcmp(now, b->data, len)) {
			pr_err("%s: socket option %s reads back different from what was set", what,
			       t[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- dump of the options that are not plain integers ---- */

static int dump_linger(int sk, SolSocketOpts *so, const char *what)
{
	struct linger l = { 0, 0 };
	socklen_t len = sizeof(l);

	if (getsockopt(sk, SOL_SOCKET, SO_LINGER, &l, &len))
		return not_applicable(errno) ? 0 : pr_errno(-errno, "%s: cannot read SO_LINGER", what);
	so->has_linger_onoff = so->has_linger_secs = true;
	so->linger_onoff = l.l_onoff;
	so->linger_secs = l.l_linger;
	return 0;
}

static int dump_timeo(int sk, int opt, int64_t *us, protobuf_c_boolean *has, const char *what)
{
	struct timeval tv = { 0, 0 };
	socklen_t len = sizeof(tv);

	if (getsockopt(sk, SOL_SOCKET, opt, &tv, &len))
		return not_applicable(errno) ? 0 :
		       pr_errno(-errno, "%s: cannot read socket timeout %d", what, opt);
	*us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
	*has = true;
	return 0;
}

static int dump_device(int sk, SolSocketOpts *so, const char *what)
{
	char name[IFNAMSIZ + 1] = "";
	socklen_t len = IFNAMSIZ;

	if (getsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, name, &len))
		return not_applicable(errno) ? 0 :
		       pr_errno(-errno, "%s: cannot read SO_BINDTODEVICE", what);
	name[MIN((size_t)len, (size_t)IFNAMSIZ)] = '\0';
	so->bindtodevice = xstrdup(name);
	return so->bindtodevice ? 0 : -ENOMEM;
}

/* Buffer sizes always, and which of them the program chose (SO_BUF_LOCK, 5.14). */
static int dump_bufs(int sk, SolSocketOpts *so, const char *what)
{
	int err = get_int(sk, SOL_SOCKET, SO_RCVBUF, &so->rcvbuf);

	if (!err)
		err = get_int(sk, SOL_SOCKET, SO_SNDBUF, &so->sndbuf);
	if (err)
		return pr_errno(err, "%s: cannot read the socket buffer sizes", what);
	so->has_rcvbuf = so->has_sndbuf = true;
	err = get_int(sk, SOL_SOCKET, SO_BUF_LOCK, &so->buf_lock);
	if (err) {
		pr_err("%s: cannot read SO_BUF_LOCK (Linux 5.14): %s", what, strerror(-err));
		return err;
	}
	so->has_buf_lock = true;
	return 0;
}

static int dump_filter(int sk, SolSocketOpts *so, const char *what)
{
	_cleanup_free_ struct sock_filter *insns = NULL;
	socklen_t n = 0, got;

	if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, NULL, &n)) {
		if (errno == EACCES) {
			pr_err("%s: its socket filter is an eBPF program, which cannot be read back: cannot checkpoint it",
			       what);
			return -EOPNOTSUPP;
		}
		return not_applicable(errno) ? 0 :
		       pr_errno(-errno, "%s: cannot read the socket filter", what);
	}
	if (!n)
		return 0;
	insns = xmalloc(n * sizeof(*insns));
	so->filter = xmalloc(n * sizeof(*so->filter));
	if (!insns || !so->filter)
		return -ENOMEM;
	got = n;
	if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, insns, &got) || got != n)
		return pr_errno(-(errno ? errno : EIO), "%s: cannot read the socket filter", what);
	for (socklen_t i = 0; i < n; i++)
		so->filter[i] = (uint64_t)insns[i].code << 48 | (uint64_t)insns[i].jt << 40 |
				(uint64_t)insns[i].jf << 32 | insns[i].k;
	so->n_filter = n;
	return 0;
}

int sockopt_dump_sol(int sk, SolSocketOpts **ret, const char *what)
{
	SolSocketOpts *so = xmalloc(sizeof(*so));
	int err;

	if (!so)
		return -ENOMEM;
	sol_socket_opts__init(so);
	*ret = so;	/* freed with the record even when we fail half way */
	err = sockopt_dump_ints(sk, sol_ints, ARRAY_SIZE(sol_ints), so, what);
	if (!err)
		err = dump_bufs(sk, so, what);
	if (!err)
		err = dump_linger(sk, so, what);
	if (!err)
		err = dump_timeo(sk, SO_RCVTIMEO, &so->rcvtimeo_us, &so->has_rcvtimeo_us, what);
	if (!err)
		err = dump_timeo(sk, SO_SNDTIMEO, &so->sndtimeo_us, &so->has_sndtimeo_us, what);
	if (!err)
		err = dump_device(sk, so, what);
	if (!err)
		err = dump_filter(sk, so, what);
	if (!err && so->n_filter)
		err = get_int(sk, SOL_SOCKET, SO_LOCK_FILTER, &so->lock_filter);
	so->has_lock_filter = !err && so->n_filter;
	return err;
}

/* ---- restore of the options that are not plain integers ---- */

/* One buffer size the program chose: half the saved value, forced past the sysctl maximum. */
static int restore_buf(int sk, int opt, int force, int saved, const char *name, const char *what)
{
	int val = saved / 2, now;

	if (setsockopt(sk, SOL_SOCKET, force, &val, sizeof(val)) &&
	    (errno != EPERM || setsockopt(sk, SOL_SOCKET, opt, &val, sizeof(val))))
		return pr_errno(-errno, "%s: cannot set %s to %d", what, name, val);
	if (get_int(sk, SOL_SOCKET, opt, &now) || now != saved) {
		pr_err("%s: %s is %d after setting it for %d (raise net.core.%s?)", what, name, now,
		       saved, opt == SO_RCVBUF ? "rmem_max" : "wmem_max");
		return -EINVAL;
	}
	return 0;
}

static int restore_bufs(int sk, const SolSocketOpts *so, const char *what)
{
	int lock = so->has_buf_lock ? so->buf_lock : 0, now, err = 0;

	if (so->has_rcvbuf && (lock & SOCK_RCVBUF_LOCK))
		err = restore_buf(sk, SO_RCVBUF, SO_RCVBUFFORCE, so->rcvbuf, "SO_RCVBUF", what);
	if (!err && so->has_sndbuf && (lock & SOCK_SNDBUF_LOCK))
		err = restore_buf(sk, SO_SNDBUF, SO_SNDBUFFORCE, so->sndbuf, "SO_SNDBUF", what);
	if (err || !so->has_buf_lock)
		return err;
	if (!get_int(sk, SOL_SOCKET, SO_BUF_LOCK, &now) && now == lock)
		return 0;
	if (setsockopt(sk, SOL_SOCKET, SO_BUF_LOCK, &lock, sizeof(lock)))
		return pr_errno(-errno, "%s: cannot set SO_BUF_LOCK to %d", what, lock);
	return 0;
}

static int restore_linger(int sk, const SolSocketOpts *so, const char *what)
{
	struct linger l = { 1, so->linger_secs };

	if (!so->has_linger_onoff || (!so->linger_onoff && !so->linger_secs))
		return 0;
	/* the time is kept only by turning lingering on; off again if it was off */
	if (setsockopt(sk, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
		return pr_errno(-errno, "%s: cannot set SO_LINGER to %d s", what, l.l_linger);
	l.l_onoff = so->linger_onoff;
	if (!l.l_onoff && setsockopt(sk, SOL_SOCKET, SO_LINGER, &l, sizeof(l)))
		return pr_errno(-errno, "%s: cannot turn SO_LINGER off", what);
	return 0;
}

static int restore_timeo(int sk, int opt, protobuf_c_boolean has, int64_t us, const char *what)
{
	struct timeval tv = { us / 1000000, us % 1000000 };

	if (!has || !us)
		return 0;
	if (setsockopt(sk, SOL_SOCKET, opt, &tv, sizeof(tv)))
		return pr_errno(-errno, "%s: cannot set the %s timeout to %lld us", what,
				opt == SO_RCVTIMEO ? "receive" : "send", (long long)us);
	return 0;
}

static int restore_filter(int sk, const SolSocketOpts *so, const char *what)
{
	_cleanup_free_ struct sock_filter *insns = NULL;
	struct sock_fprog prog = { .len = so->n_filter };

	if (!so->n_filter)
		return 0;
	insns = xmalloc(so->n_filter * sizeof(*insns));
	if (!insns)
		return -ENOMEM;
	for (size_t i = 0; i < so->n_filter; i++)
		insns[i] = (struct sock_filter){ .code = so->filter[i] >> 48,
						 .jt = so->filter[i] >> 40, .jf = so->filter[i] >> 32,
						 .k = (uint32_t)so->filter[i] };
	prog.filter = insns;
	if (setsockopt(sk, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
		return pr_errno(-errno, "%s: cannot attach its socket filter (%zu instructions)", what,
				so->n_filter);
	if (so->has_lock_filter && so->lock_filter &&
	    setsockopt(sk, SOL_SOCKET, SO_LOCK_FILTER, &so->lock_filter, sizeof(so->lock_filter)))
		return pr_errno(-errno, "%s: cannot lock its socket filter", what);
	return 0;
}

static int restore_device(int sk, const SolSocketOpts *so, const char *what)
{
	if (!so->bindtodevice || !so->bindtodevice[0])
		return 0;
	if (setsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, so->bindtodevice, strlen(so->bindtodevice)))
		return pr_errno(-errno, "%s: cannot bind it to device %s", what, so->bindtodevice);
	return 0;
}

int sockopt_restore_sol(int sk, const SolSocketOpts *so, enum sockopt_when when, const char *what)
{
	int err;

	if (when == SOCKOPT_BEFORE_BIND) {
		err = sockopt_restore_ints(sk, sol_ints, ARRAY_SIZE(sol_ints), so, when, what);
		return err ? err : restore_device(sk, so, what);
	}
	err = restore_bufs(sk, so, what);
	if (!err)
		err = sockopt_restore_ints(sk, sol_ints, ARRAY_SIZE(sol_ints), so, when, what);
	if (!err)
		err = restore_linger(sk, so, what);
	if (!err)
		err = restore_timeo(sk, SO_RCVTIMEO, so->has_rcvtimeo_us, so->rcvtimeo_us, what);
	if (!err)
		err = restore_timeo(sk, SO_SNDTIMEO, so->has_sndtimeo_us, so->sndtimeo_us, what);
	if (!err)
		err = restore_filter(sk, so, what);
	if (!err)
		err = sockopt_verify_ints(sk, sol_ints, ARRAY_SIZE(sol_ints), so, what);
	return err;
}

static int netns_cookie(int sk, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(sk, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) ? -errno : 0;
}

int sockopt_check_netns(int sk, const char *what)
{
	static uint64_t ours;
	uint64_t theirs;
	int err = netns_cookie(sk, &theirs);

	if (!err && !ours) {
		int me = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

		err = me < 0 ? -errno : netns_cookie(me, &ours);
		safe_close(me);
	}
	if (err)
		return pr_errno(err, "%s: cannot read the socket's network namespace (SO_NETNS_COOKIE)", what);
	if (theirs != ours) {
		pr_err("%s: the socket belongs to another network namespace than crest's: cannot checkpoint it yet",
		       what);
		return -EOPNOTSUPP;
	}
	return 0;
}
