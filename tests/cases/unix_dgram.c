/*
 * unix_dgram: datagram and seqpacket sockets come back with every queued message, its
 * boundaries, its sender's address and credentials, and their connections and names.
 *
 *   fds 20/21  SOCK_DGRAM socketpair, 21 in the child. Queued for 21: "one", "" (0 bytes),
 *              "three", 5000 bytes; for 20: "back1", "back2".
 *   fds 30/31  SOCK_SEQPACKET socketpair, 31 in the child. Queued for 31: "p1", "packet2",
 *              then 30 shut down its sending side (31 reads EOF after them); for 30: "r1".
 *   fd 40      SOCK_DGRAM bound to OUTFILE.srv, SO_PASSCRED. Queued, in order: from fd 41
 *              (bound to an abstract name, connected to 40), from fd 42 (unnamed), from a
 *              socket bound to OUTFILE.gone and closed since (its file removed), and from
 *              the child (unnamed): each recvfrom must give the sender's address and pid.
 *   fd 41      SOCK_DGRAM bound to "\0crest-unix-dgram-<pid>", connected to 40.
 *   fd 43      SOCK_DGRAM connected to "\0crest-unix-dgram-<pid>-gone", since closed:
 *              getpeername still names it, and a send gives ECONNREFUSED.
 *
 * After SIGTERM each queue is read back message by message and must then be empty; 41 can
 * still send to 40 without an address, and 20/21 and 30/31 still carry new messages.
 */
#include "case.h"

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define BIGMSG 5000

static pid_t child_pid;
static char srv_path[256], gone_path[256];
static struct sockaddr_un abs41, abs_gone;
static socklen_t abs41_len, abs_gone_len;

static void send_to(int fd, const void *buf, size_t len, const struct sockaddr_un *sa,
		    socklen_t salen)
{
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)sa, salen) != (ssize_t)len)
		case_die("sendto from fd %d: %m", fd);
}

static void send_msg(int fd, const void *buf, size_t len)
{
	send_to(fd, buf, len, NULL, 0);
}

static void big(char *buf)
{
	for (int i = 0; i < BIGMSG; i++)
		buf[i] = (char)('a' + i % 23);
}

/* The next message of fd is exactly want (len bytes), with no truncation. */
static void check_msg(int fd, const void *want, size_t len, const char *what)
{
	char buf[BIGMSG + 16];
	ssize_t n;

	case_poll(fd, POLLIN, 2000);
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	case_check(n == (ssize_t)len && !memcmp(buf, want, len),
		   "%s: message of %zd bytes (%m), want %zu bytes \"%.*s\"", what, n, len,
		   (int)(len < 16 ? len : 16), (const char *)want);
}

/* The next datagram of fd 40: its text, the sender's address, and the sender's pid. */
static void check_from(const char *want, const struct sockaddr_un *from, socklen_t from_len,
		       pid_t pid)
{
	char buf[64] = "", cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct sockaddr_un sa;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr m = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov,
			    .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	struct ucred cr = { 0, 0, 0 };
	ssize_t n = recvmsg(40, &m, MSG_DONTWAIT);

	case_check(n == (ssize_t)strlen(want) && !strcmp(buf, want), "fd 40: got \"%s\" (%zd), want \"%s\"",
		   buf, n, want);
	if (from_len <= offsetof(struct sockaddr_un, sun_path))
		case_check(m.msg_namelen <= offsetof(struct sockaddr_un, sun_path),
			   "fd 40: \"%s\" came from a named sender, want an unnamed one", want);
	else
		case_check(m.msg_namelen == from_len && !memcmp(&sa, from, from_len),
			   "fd 40: \"%s\" came from another address (%u bytes: %s)", want,
			   m.msg_namelen, sa.sun_path[0] ? sa.sun_path : sa.sun_path + 1);
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_type == SCM_CREDENTIALS)
		memcpy(&cr, CMSG_DATA(c), sizeof(cr));
	case_check(cr.pid == pid, "fd 40: \"%s\" has sender pid %d, want %d", want, cr.pid, pid);
}

static void setup_server(void)
{
	struct sockaddr_un sa, gone;
	socklen_t len = case_unix_addr(&sa, srv_path), glen = case_unix_addr(&gone, gone_path);
	int one = 1, g;

	unlink(srv_path);
	unlink(gone_path);
	case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 40);
	if (bind(40, (struct sockaddr *)&sa, len) ||
	    setsockopt(40, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		case_die("server: %m");
	abs41_len = case_unix_abstract(&abs41, "crest-unix-dgram-%d", getpid());
	case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 41);
	if (bind(41, (struct sockaddr *)&abs41, abs41_len) || connect(41, (struct sockaddr *)&sa, len))
		case_die("fd 41: %m");
	case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 42);
	send_msg(41, "from 41", 7);
	send_to(42, "from 42", 7, &sa, len);
	g = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (g < 0 || bind(g, (struct sockaddr *)&gone, glen))
		case_die("gone sender: %m");
	send_to(g, "from gone", 9, &sa, len);
	close(g);
	unlink(gone_path);
}

static void setup_gone_peer(void)
{
	int p = socket(AF_UNIX, SOCK_DGRAM, 0);

	abs_gone_len = case_unix_abstract(&abs_gone, "crest-unix-dgram-%d-gone", getpid());
	case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 43);
	if (p < 0 || bind(p, (struct sockaddr *)&abs_gone, abs_gone_len) ||
	    connect(43, (struct sockaddr *)&abs_gone, abs_gone_len))
		case_die("fd 43: %m");
	close(p);
}

static void setup(void)
{
	char b[BIGMSG];

	case_path(srv_path, sizeof(srv_path), "srv");
	case_path(gone_path, sizeof(gone_path), "gone");
	case_socketpair_at(SOCK_DGRAM, 20, 21);
	case_socketpair_at(SOCK_SEQPACKET, 30, 31);
	big(b);
	send_msg(20, "one", 3);
	send_msg(20, "", 0);
	send_msg(20, "three", 5);
	send_msg(20, b, BIGMSG);
	send_msg(21, "back1", 5);
	send_msg(21, "back2", 5);
	send_msg(30, "p1", 2);
	send_msg(30, "packet2", 7);
	if (shutdown(30, SHUT_WR))
		case_die("shutdown: %m");
	send_msg(31, "r1", 2);
	setup_server();
	setup_gone_peer();
}

static __attribute__((noreturn)) void child(int sync)
{
	struct sockaddr_un sa;
	socklen_t len = case_unix_addr(&sa, srv_path);
	char b[BIGMSG], c;
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	close(20);
	close(30);
	send_to(s, "from child", 10, &sa, len);
	close(s);
	close(sync);
	case_wait();
	if (case_sabotage("child_message"))
		recv(21, &c, 1, 0);
	big(b);
	check_msg(21, "one", 3, "fd 21 (child)");
	check_msg(21, "", 0, "fd 21 (child)");
	check_msg(21, "three", 5, "fd 21 (child)");
	check_msg(21, b, BIGMSG, "fd 21 (child)");
	check_msg(21, "ping", 4, "fd 21 (child)");
	case_check_empty(21, "fd 21 (child)");
	send_msg(21, "pong", 4);
	check_msg(31, "p1", 2, "fd 31 (child)");
	check_msg(31, "packet2", 7, "fd 31 (child)");
	case_check(recv(31, b, sizeof(b), MSG_DONTWAIT) == 0, "fd 31 (child): no EOF after the queue");
	send_msg(31, "r2", 2);
	case_child_exit();
}

static void sabotage(void)
{
	char c;
	int zero = 0;

	if (case_sabotage("boundaries"))
		recv(20, &c, 1, 0);
	if (case_sabotage("sender"))
		recv(40, &c, 1, 0);
	if (case_sabotage("creds"))
		setsockopt(40, SOL_SOCKET, SO_PASSCRED, &zero, sizeof(zero));
	if (case_sabotage("peer"))
		case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 41);
	if (case_sabotage("gone_peer"))
		case_socket_at(AF_UNIX, SOCK_DGRAM, 0, 43);
}

static void check_parent(void)
{
	struct sockaddr_un none = { AF_UNIX }, gone, sa;
	socklen_t glen = case_unix_addr(&gone, gone_path), len = sizeof(sa);

	check_msg(20, "back1", 5, "fd 20");
	check_msg(20, "back2", 5, "fd 20");
	case_check_empty(20, "fd 20");
	check_msg(30, "r1", 2, "fd 30");
	case_check_empty(30, "fd 30");

	check_from("from 41", &abs41, abs41_len, getpid());
	check_from("from 42", &none, offsetof(struct sockaddr_un, sun_path), getpid());
	check_from("from gone", &gone, glen, getpid());
	check_from("from child", &none, offsetof(struct sockaddr_un, sun_path), child_pid);
	case_check_empty(40, "fd 40");

	/* 41 is still connected to 40 */
	if (send(41, "again", 5, MSG_DONTWAIT) != 5)
		case_fail("fd 41: send without an address: %m");
	else
		check_from("again", &abs41, abs41_len, getpid());

	case_check(!getpeername(43, (struct sockaddr *)&sa, &len) && len == abs_gone_len &&
		   !memcmp(&sa, &abs_gone, len), "fd 43: getpeername does not name its closed peer");
	case_check(send(43, "x", 1, MSG_DONTWAIT) < 0 && errno == ECONNREFUSED,
		   "fd 43: send to a closed peer did not give ECONNREFUSED (%m)");
}

int main(int argc, char **argv)
{
	int sync[2];
	char c;

	case_init(argc, argv);
	setup();
	if (pipe(sync))
		case_die("pipe: %m");
	child_pid = case_fork();
	if (child_pid == 0) {
		close(sync[0]);
		child(sync[1]);
	}
	close(sync[1]);
	close(21);
	close(31);
	/* the child's datagram is queued once it closes its end of the pipe */
	if (read(sync[0], &c, 1) != 0)
		case_die("sync with the child: %m");
	close(sync[0]);
	case_ready_wait();

	sabotage();
	check_parent();
	send_msg(20, "ping", 4);
	case_check_child(child_pid, "child holding fds 21 and 31");
	check_msg(20, "pong", 4, "fd 20");
	check_msg(30, "r2", 2, "fd 30");
	unlink(srv_path);
	case_finish();
}
