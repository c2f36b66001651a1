/*
 * unix_stream: stream socketpairs come back connected, with the bytes queued in both
 * directions, their shutdown state, credentials, options and file flags.
 *
 *   fds 20/21  socketpair: 20 in the parent (O_NONBLOCK, SO_SNDBUF set once the data is
 *              queued), 21 in the child.
 *              Queued: 100 KiB parent -> child, 3000 bytes child -> parent.
 *   fds 30/31  socketpair in the parent; 31 sent "last words" and shut down its sending side:
 *              30 reads them, then EOF; writing on 31 gives EPIPE, 30 -> 31 still works.
 *   fd 40      its peer was closed with "orphan" queued for 40: 40 reads it, then EOF, and a
 *              write gives EPIPE.
 *   fds 50/51  socketpair, 50 has SO_PASSCRED: "from child" (sent by the child) then
 *              "from parent" wait in 50, each with its sender's pid, uid and gid.
 *   fds 60/61  socketpair, "abcdefgh" queued for 60 and SO_PEEK_OFF 3 on it: a MSG_PEEK
 *              returns "defgh". 60 also has O_ASYNC, owned by the parent (SIGIO ignored).
 *
 * After SIGTERM each queue is read back byte for byte and must then be empty; then data goes
 * both ways between the parent and the child through 20/21.
 */
#include "case.h"

#include <poll.h>
#include <sys/socket.h>

#define BIG (100 * 1024)
#define SMALL 3000
#define SNDBUF 65536

static pid_t child_pid;
static int sndbuf_at_ready;

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			case_poll(fd, POLLOUT, 1000);
			continue;
		}
		if (n <= 0)
			case_die("send on fd %d: %m", fd);
		p += n;
		len -= n;
	}
}

static void send_pattern(int fd, size_t len, int seed)
{
	uint8_t buf[4096];

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		case_pattern_fill(buf, off, n, seed);
		send_all(fd, buf, n);
	}
}

/* Reads exactly len bytes (waiting at most 2 s for each chunk); returns how many came. */
static size_t recv_exact(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (!case_poll(fd, POLLIN, 2000))
			break;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

static void check_pattern(int fd, size_t len, int seed, const char *what)
{
	uint8_t *buf = malloc(len);
	size_t got = recv_exact(fd, buf, len);
	ssize_t bad = case_pattern_diff(buf, 0, got, seed);

	case_check(got == len, "%s: %zu bytes queued, want %zu", what, got, len);
	if (bad >= 0)
		case_fail("%s: byte %zd differs", what, bad);
	free(buf);
}

static void check_text(int fd, const char *want, const char *what)
{
	char buf[64] = "";
	size_t got = recv_exact(fd, (uint8_t *)buf, strlen(want));

	case_check(got == strlen(want) && !memcmp(buf, want, got), "%s: read \"%.*s\", want \"%s\"",
		   what, (int)got, buf, want);
}

static void check_eof(int fd, const char *what)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

	case_check(n == 0, "%s: recv after the queue returned %zd (%m), want 0 (EOF)", what, n);
}

static void check_epipe(int fd, const char *what)
{
	ssize_t n = send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);

	case_check(n < 0 && errno == EPIPE, "%s: send returned %zd (%m), want EPIPE", what, n);
}

static void check_cred_msg(int fd, const char *want, pid_t pid)
{
	char buf[64] = "", cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, strlen(want) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	struct ucred cr = { 0, 0, 0 };
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);

	case_check(n == (ssize_t)strlen(want) && !memcmp(buf, want, n),
		   "fd 50: read \"%.*s\", want \"%s\"", (int)(n > 0 ? n : 0), buf, want);
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_type != SCM_CREDENTIALS) {
		case_fail("fd 50: \"%s\" came without credentials", want);
		return;
	}
	memcpy(&cr, CMSG_DATA(c), sizeof(cr));
	case_check(cr.pid == pid && cr.uid == getuid() && cr.gid == getgid(),
		   "fd 50: \"%s\" has credentials pid %d uid %u gid %u, want %d %u %u", want,
		   cr.pid, cr.uid, cr.gid, pid, getuid(), getgid());
}

static void setup(void)
{
	int one = 1, three = 3;

	case_socketpair_at(SOCK_STREAM, 20, 21);
	case_socketpair_at(SOCK_STREAM, 30, 31);
	case_socketpair_at(SOCK_STREAM, 40, 41);
	case_socketpair_at(SOCK_STREAM, 50, 51);
	case_socketpair_at(SOCK_STREAM, 60, 61);
	if (setsockopt(50, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		case_die("setsockopt: %m");
	send_all(31, "last words", 10);
	if (shutdown(31, SHUT_WR))
		case_die("shutdown: %m");
	send_all(41, "orphan", 6);
	close(41);
	send_all(61, "abcdefgh", 8);
	if (setsockopt(60, SOL_SOCKET, SO_PEEK_OFF, &three, sizeof(three)))
		case_die("SO_PEEK_OFF: %m");
	signal(SIGIO, SIG_IGN);
	if (fcntl(60, F_SETOWN, getpid()) || fcntl(60, F_SETFL, O_ASYNC))
		case_die("O_ASYNC on fd 60: %m");
}

static __attribute__((noreturn)) void child(void)
{
	char buf[16];

	close(20);
	send_pattern(21, SMALL, 2);
	send_all(51, "from child", 10);
	case_wait();
	if (case_sabotage("child_data"))
		recv(21, buf, 1, 0);
	check_pattern(21, BIG, 1, "fd 21 (child)");
	/* the parent writes this after restore, right behind the queue */
	check_text(21, "ping", "fd 21 (child)");
	case_check_empty(21, "fd 21 (child)");
	send_all(21, "pong", 4);
	case_child_exit();
}

static void sabotage(void)
{
	int zero = 0, off = -1, sb = SNDBUF;
	char buf[16];

	if (case_sabotage("data"))
		recv(20, buf, 1, 0);
	if (case_sabotage("nonblock"))
		fcntl(20, F_SETFL, 0);
	if (case_sabotage("sndbuf"))
		setsockopt(20, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	if (case_sabotage("eof"))
		case_socketpair_at(SOCK_STREAM, 30, 31);
	if (case_sabotage("creds"))
		setsockopt(50, SOL_SOCKET, SO_PASSCRED, &zero, sizeof(zero));
	if (case_sabotage("peek_off"))
		setsockopt(60, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	if (case_sabotage("async"))
		fcntl(60, F_SETOWN, 0);
	if (case_sabotage("orphan")) {
		case_socketpair_at(SOCK_STREAM, 40, 41);
		send_all(41, "orphan", 6);
	}
}

static void check_parent(void)
{
	char buf[16] = "";
	int off = -2, sb = 0;
	socklen_t len = sizeof(off);

	case_check(fcntl(20, F_GETFL) & O_NONBLOCK, "fd 20: O_NONBLOCK is gone");
	getsockopt(20, SOL_SOCKET, SO_SNDBUF, &sb, &len);
	case_check(sb == sndbuf_at_ready, "fd 20: SO_SNDBUF %d, want %d", sb, sndbuf_at_ready);
	check_pattern(20, SMALL, 2, "fd 20");
	case_check_empty(20, "fd 20");

	check_text(30, "last words", "fd 30");
	check_eof(30, "fd 30");
	check_epipe(31, "fd 31 (shut down for sending)");
	send_all(30, "still", 5);
	check_text(31, "still", "fd 31");

	check_text(40, "orphan", "fd 40");
	check_eof(40, "fd 40");
	check_epipe(40, "fd 40 (peer closed)");

	check_cred_msg(50, "from child", child_pid);
	check_cred_msg(50, "from parent", getpid());
	case_check_empty(50, "fd 50");

	case_check((fcntl(60, F_GETFL) & O_ASYNC) && fcntl(60, F_GETOWN) == getpid(),
		   "fd 60: O_ASYNC %s, owner %d, want on and %d",
		   fcntl(60, F_GETFL) & O_ASYNC ? "on" : "off", fcntl(60, F_GETOWN), getpid());
	len = sizeof(off);
	getsockopt(60, SOL_SOCKET, SO_PEEK_OFF, &off, &len);
	case_check(off == 3, "fd 60: SO_PEEK_OFF %d, want 3", off);
	memset(buf, 0, sizeof(buf));
	case_check(recv(60, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) == 5 && !strcmp(buf, "defgh"),
		   "fd 60: MSG_PEEK at offset 3 gave \"%s\", want \"defgh\"", buf);
}

int main(int argc, char **argv)
{
	socklen_t len = sizeof(sndbuf_at_ready);
	int sb = SNDBUF / 2;
	char c;

	case_init(argc, argv);
	setup();
	child_pid = case_spawn(child);
	close(21);
	/* the child's message must be queued before ours */
	case_wait_until(recv(50, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1, 2000);
	send_all(51, "from parent", 11);
	/* 100 KiB fit the default send buffer; the smaller one is set once they are queued */
	send_pattern(20, BIG, 1);
	if (fcntl(20, F_SETFL, O_NONBLOCK) ||
	    setsockopt(20, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)))
		case_die("fcntl/setsockopt on fd 20: %m");
	getsockopt(20, SOL_SOCKET, SO_SNDBUF, &sndbuf_at_ready, &len);
	case_ready_wait();

	sabotage();
	check_parent();
	/* 20's queued bytes fill its send buffer until the child reads them: wake it first */
	kill(child_pid, SIGTERM);
	send_all(20, "ping", 4);
	case_check_child(child_pid, "child holding fd 21");
	check_text(20, "pong", "fd 20");
	case_finish();
}
