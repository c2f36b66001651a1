/*
 * unix_listen: listening unix sockets come back bound and listening, with the connections
 * they accepted (names on both ends, data queued both ways) and the ones not accepted yet.
 *
 *   fd 20  SOCK_STREAM listener on OUTFILE.sock (file mode 0640), backlog 7
 *   fd 21  connection accepted on 20; its client is fd 22 of the child. Queued: "to parent"
 *          for 21, "to child" for 22.
 *   fd 30  SOCK_STREAM listener on "\0crest-unix-listen-<pid>", with one connection not
 *          accepted yet, from fd 31 (parent)
 *   fd 40  connection accepted on "\0crest-unix-closed-<pid>", whose listener was closed;
 *          client fd 41
 *   fd 50  SOCK_STREAM bound to OUTFILE.bound, not listening
 *   fd 60  SOCK_SEQPACKET listener on the relative path "unix_listen.rel" (the case runs in
 *          OUTFILE's directory)
 *   fd 61  SOCK_STREAM bound to OUTFILE.unlinked, whose file was removed since: the name
 *          stays, the file stays gone
 *
 * After SIGTERM: names, peers and files as at "ready"; the queued data; the pending connection
 * is accepted and carries data; new clients reach 20 and 60; 40/41 still carry data.
 */
#include "case.h"

#include <libgen.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static pid_t child_pid;
static char sock_path[256], bound_path[256], unlinked_path[256];
static struct sockaddr_un abs_listen, abs_closed;
static socklen_t abs_listen_len, abs_closed_len;

static void bind_at(int fd, const struct sockaddr_un *sa, socklen_t len)
{
	if (bind(fd, (const struct sockaddr *)sa, len))
		case_die("bind fd %d: %m", fd);
}

static void connect_to(int fd, const struct sockaddr_un *sa, socklen_t len)
{
	if (connect(fd, (const struct sockaddr *)sa, len))
		case_die("connect fd %d: %m", fd);
}

static void send_text(int fd, const char *text)
{
	if (send(fd, text, strlen(text), MSG_NOSIGNAL) != (ssize_t)strlen(text))
		case_fail("fd %d: send \"%s\": %m", fd, text);
}

static void check_text(int fd, const char *want, const char *what)
{
	char buf[64] = "";
	ssize_t n;

	case_poll(fd, POLLIN, 2000);
	n = recv(fd, buf, strlen(want), MSG_DONTWAIT);
	case_check(n == (ssize_t)strlen(want) && !memcmp(buf, want, n), "%s: read \"%s\" (%zd), want \"%s\"",
		   what, buf, n, want);
}

static void check_name(int fd, bool peer, const struct sockaddr_un *want, socklen_t want_len,
		       const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &len) :
		       getsockname(fd, (struct sockaddr *)&sa, &len);

	case_check(!r && len == want_len && !memcmp(&sa, want, len),
		   "fd %d: %s %s is not %s (%m)", fd, what, r ? "?" : sa.sun_path[0] ? sa.sun_path : sa.sun_path + 1,
		   want->sun_path[0] ? want->sun_path : want->sun_path + 1);
}

/* accept(2) of a connection that must be pending already: never blocks. */
static int accept_now(int lfd)
{
	if (!case_poll(lfd, POLLIN, 0)) {
		errno = EAGAIN;
		return -1;
	}
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* A fresh client of the listener at sa (type type) gets accepted, and data goes both ways. */
static void check_serves(int lfd, int type, const struct sockaddr_un *sa, socklen_t len)
{
	int c = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), s;

	if (c < 0 || connect(c, (const struct sockaddr *)sa, len)) {
		case_fail("fd %d: a new client cannot connect: %m", lfd);
		close(c);
		return;
	}
	s = accept_now(lfd);
	if (s < 0) {
		case_fail("fd %d: accept of a new client: %m", lfd);
	} else {
		send_text(c, "hello");
		check_text(s, "hello", "new connection");
		send_text(s, "welcome");
		check_text(c, "welcome", "new connection");
		close(s);
	}
	close(c);
}

static void setup_paths(void)
{
	struct sockaddr_un sa;

	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 20);
	bind_at(20, &sa, case_unix_addr(&sa, sock_path));
	if (chmod(sock_path, 0640) || listen(20, 7))
		case_die("fd 20: %m");
	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 22);
	connect_to(22, &sa, case_unix_addr(&sa, sock_path));
	case_move_fd(accept(20, NULL, NULL), 21, 0);
	send_text(22, "to parent");
	send_text(21, "to child");

	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 50);
	bind_at(50, &sa, case_unix_addr(&sa, bound_path));
	case_socket_at(AF_UNIX, SOCK_SEQPACKET, 0, 60);
	bind_at(60, &sa, case_unix_addr(&sa, "unix_listen.rel"));
	if (listen(60, 3))
		case_die("fd 60: %m");
	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 61);
	bind_at(61, &sa, case_unix_addr(&sa, unlinked_path));
	unlink(unlinked_path);
}

static void setup_abstract(void)
{
	int l;

	abs_listen_len = case_unix_abstract(&abs_listen, "crest-unix-listen-%d", getpid());
	abs_closed_len = case_unix_abstract(&abs_closed, "crest-unix-closed-%d", getpid());
	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 30);
	bind_at(30, &abs_listen, abs_listen_len);
	if (listen(30, 2))
		case_die("fd 30: %m");
	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 31);
	connect_to(31, &abs_listen, abs_listen_len);

	l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0)
		case_die("socket: %m");
	bind_at(l, &abs_closed, abs_closed_len);
	if (listen(l, 1))
		case_die("listen: %m");
	case_socket_at(AF_UNIX, SOCK_STREAM, 0, 41);
	connect_to(41, &abs_closed, abs_closed_len);
	case_move_fd(accept(l, NULL, NULL), 40, 0);
	close(l);
}

static void setup(void)
{
	char dir[256];

	case_path(sock_path, sizeof(sock_path), "sock");
	case_path(bound_path, sizeof(bound_path), "bound");
	case_path(unlinked_path, sizeof(unlinked_path), "unlinked");
	snprintf(dir, sizeof(dir), "%s", case_out);
	if (chdir(dirname(dir)))
		case_die("chdir: %m");
	unlink(sock_path);
	unlink(bound_path);
	unlink("unix_listen.rel");
	setup_paths();
	setup_abstract();
}

static __attribute__((noreturn)) void child(void)
{
	struct sockaddr_un sa;
	socklen_t len = case_unix_addr(&sa, sock_path);
	char c;

	for (int fd = 20; fd <= 61; fd++)
		if (fd != 22)
			close(fd);
	case_wait();
	if (case_sabotage("child_data"))
		recv(22, &c, 1, 0);
	check_name(22, true, &sa, len, "peer");
	check_text(22, "to child", "fd 22 (child)");
	send_text(22, "child after");
	case_child_exit();
}

static void sabotage(void)
{
	struct sockaddr_un sa;
	int sv[2];
	char c;

	if (case_sabotage("pending"))
		close(accept_now(30));
	if (case_sabotage("accepted_name") && !socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		case_move_fd(sv[0], 21, 0);
	if (case_sabotage("mode"))
		chmod(sock_path, 0600);
	if (case_sabotage("data"))
		recv(21, &c, 1, 0);
	if (case_sabotage("unlinked_file"))
		close(open(unlinked_path, O_CREAT | O_WRONLY, 0600));
	if (case_sabotage("relative")) {
		case_socket_at(AF_UNIX, SOCK_SEQPACKET, 0, 60);
		unlink("unix_listen.rel");
		bind_at(60, &sa, case_unix_addr(&sa, unlinked_path));
		listen(60, 1);
	}
}

static void check_files(void)
{
	struct stat st;

	case_check(!stat(sock_path, &st) && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0640,
		   "%s: not a socket file of mode 0640 (mode %o)", sock_path, st.st_mode);
	case_check(!stat(bound_path, &st) && S_ISSOCK(st.st_mode), "%s: not a socket file", bound_path);
	case_check(stat(unlinked_path, &st) && errno == ENOENT, "%s: exists again", unlinked_path);
}

static void check_listeners(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int s, on = 0;

	len = sizeof(on);
	getsockopt(20, SOL_SOCKET, SO_ACCEPTCONN, &on, &len);
	case_check(on == 1, "fd 20: not listening");
	check_name(20, false, &sa, case_unix_addr(&sa, sock_path), "name");
	check_name(21, false, &sa, case_unix_addr(&sa, sock_path), "name");
	check_text(21, "to parent", "fd 21");

	check_name(30, false, &abs_listen, abs_listen_len, "name");
	check_name(31, true, &abs_listen, abs_listen_len, "peer");
	s = accept_now(30);
	if (s < 0) {
		case_fail("fd 30: no pending connection to accept: %m");
	} else {
		check_name(s, false, &abs_listen, abs_listen_len, "name");
		send_text(31, "pending hello");
		check_text(s, "pending hello", "accepted pending connection");
		send_text(s, "pending reply");
		check_text(31, "pending reply", "fd 31");
		case_check(accept_now(30) < 0 && errno == EAGAIN,
			   "fd 30: more than one connection was pending");
		close(s);
	}

	check_name(40, false, &abs_closed, abs_closed_len, "name");
	check_name(41, true, &abs_closed, abs_closed_len, "peer");
	send_text(41, "closed hello");
	check_text(40, "closed hello", "fd 40");

	check_name(50, false, &sa, case_unix_addr(&sa, bound_path), "name");
	check_name(60, false, &sa, case_unix_addr(&sa, "unix_listen.rel"), "name");
	check_name(61, false, &sa, case_unix_addr(&sa, unlinked_path), "name");
	check_serves(20, SOCK_STREAM, &sa, case_unix_addr(&sa, sock_path));
	check_serves(60, SOCK_SEQPACKET, &sa, case_unix_addr(&sa, "unix_listen.rel"));
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	child_pid = case_spawn(child);
	close(22);
	case_ready_wait();

	sabotage();
	check_files();
	check_listeners();
	case_check_child(child_pid, "child holding fd 22");
	check_text(21, "child after", "fd 21");
	unlink(sock_path);
	unlink(bound_path);
	unlink("unix_listen.rel");
	case_finish();
}
