/*
 * unix_scm: descriptors in flight (SCM_RIGHTS) come back in the receive queues that carry them,
 * in order, with the messages they came with, and each is the same open file description as
 * before: shared with the process that also holds it, alone when only the queue has it.
 *
 * The parent holds:
 *   fd 30      OUTFILE.shared, "0123456789", offset 5; its description is also in flight
 *   fd 31      the read end of a pipe, also in flight; the write end is only in flight
 * The child holds:
 *   fds 20/21  stream socketpair; queued for 20, each message with one descriptor:
 *              "file" + fd 30, "pipe" + the pipe's write end, "only" + OUTFILE.only
 *              ("abcdefgh", offset 3), which the sender closed after sending
 *   fds 22/23  datagram socketpair; queued for 22: "pair" + fd 30 and fd 31, "none" without
 *              any, "solo" + OUTFILE.solo ("ABCDEFGH", offset 6), closed after sending
 *
 * After SIGTERM the child receives the messages: the file comes twice at the parent's offset
 * (it reads a byte through each copy), the pipe's ends are one pipe and it writes "through"
 * into it, the files only in flight have their contents and offsets, and both queues are then
 * empty. The parent then finds fd 30 at offset 7 (moved by the child's reads: one
 * description) and "through" in fd 31.
 */
#include "case.h"

#include <poll.h>
#include <sys/socket.h>

#define MAX_FDS 4

static void send_fds(int sk, const char *data, const int *fds, size_t nr)
{
	char cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nr) {
		m.msg_control = cbuf;
		m.msg_controllen = CMSG_SPACE(nr * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nr * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nr * sizeof(int));
	}
	if (sendmsg(sk, &m, 0) != (ssize_t)strlen(data))
		case_die("sendmsg \"%s\" on fd %d: %m", data, sk);
}

/* A file OUTFILE.suffix holding text, open at offset off; the caller closes it. */
static int open_text(const char *suffix, const char *text, off_t off)
{
	int fd = case_open_out_at(suffix, O_RDWR | O_CREAT | O_TRUNC, 0600, 40);

	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || lseek(fd, off, SEEK_SET) != off)
		case_die("cannot fill OUTFILE.%s: %m", suffix);
	return fd;
}

static void setup(void)
{
	int p[2], fd;

	case_move_fd(open_text("shared", "0123456789", 5), 30, 0);
	if (pipe(p))
		case_die("pipe: %m");
	case_move_fd(p[0], 31, 0);
	case_move_fd(p[1], 32, 0);
	case_socketpair_at(SOCK_STREAM, 20, 21);
	case_socketpair_at(SOCK_DGRAM, 22, 23);

	send_fds(21, "file", (int[]){ 30 }, 1);
	send_fds(21, "pipe", (int[]){ 32 }, 1);
	fd = open_text("only", "abcdefgh", 3);
	send_fds(21, "only", &fd, 1);
	close(fd);

	send_fds(23, "pair", (int[]){ 30, 31 }, 2);
	send_fds(23, "none", NULL, 0);
	fd = open_text("solo", "ABCDEFGH", 6);
	send_fds(23, "solo", &fd, 1);
	close(fd);
	close(32);	/* the write end is only in flight now */
}

/* Receives one message into buf and its descriptors into fds; returns how many came. */
static size_t recv_fds(int sk, char *buf, size_t size, int *fds, const char *what)
{
	char cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = { buf, size - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(sk, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	size_t nr = 0;

	buf[n > 0 ? n : 0] = '\0';
	if (n < 0)
		case_fail("%s: recvmsg: %m", what);
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nr = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), nr * sizeof(int));
		}
	return nr;
}

/* Receives message want with nr descriptors, or says what came instead. */
static bool expect(int sk, const char *want, int *fds, size_t nr)
{
	char buf[64];
	size_t got = recv_fds(sk, buf, sizeof(buf), fds, want);

	case_check(!strcmp(buf, want), "fd %d: message \"%s\", want \"%s\"", sk, buf, want);
	case_check(got == nr, "fd %d: message \"%s\" came with %zu descriptors, want %zu", sk, buf,
		   got, nr);
	return !strcmp(buf, want) && got == nr;
}

/* fd is fd 30's description, at offset want: reading a byte through it moves fd 30 too. */
static void check_shared(int fd, off_t want, const char *what)
{
	char c = 0;

	case_check(lseek(fd, 0, SEEK_CUR) == want, "%s: offset %jd, want %jd (fd 30's)", what,
		   (intmax_t)lseek(fd, 0, SEEK_CUR), (intmax_t)want);
	case_check(read(fd, &c, 1) == 1 && c == '0' + want, "%s: read '%c', want '%c'", what, c,
		   (char)('0' + want));
	close(fd);
}

/* A file only in flight: its offset and the rest of its contents. */
static void check_alone(int fd, off_t off, const char *rest, const char *what)
{
	char buf[16] = "";

	case_check(lseek(fd, 0, SEEK_CUR) == off, "%s: offset %jd, want %jd", what,
		   (intmax_t)lseek(fd, 0, SEEK_CUR), (intmax_t)off);
	case_check(read(fd, buf, sizeof(buf) - 1) == (ssize_t)strlen(rest) && !strcmp(buf, rest),
		   "%s: read \"%s\", want \"%s\"", what, buf, rest);
	close(fd);
}

/* The pipe's ends in flight are one pipe; the write end writes "through" for the parent. */
static void check_pipe(int wfd, int rfd)
{
	struct stat w, r;

	case_check(!fstat(wfd, &w) && !fstat(rfd, &r) && S_ISFIFO(w.st_mode) && w.st_ino == r.st_ino,
		   "the pipe's write end and read end in flight are not one pipe");
	case_check(write(wfd, "through", 7) == 7, "pipe write end in flight: write: %m");
	close(wfd);
	close(rfd);
}

static void child_checks(void)
{
	int fds[MAX_FDS], wfd = -1;

	if (expect(20, "file", fds, 1))
		check_shared(fds[0], 5, "stream \"file\"");
	if (expect(20, "pipe", fds, 1))
		wfd = fds[0];
	if (expect(20, "only", fds, 1))
		check_alone(fds[0], 3, "defgh", "stream \"only\"");
	case_check_empty(20, "fd 20");

	if (expect(22, "pair", fds, 2)) {
		check_shared(fds[0], 6, "datagram \"pair\"");
		if (wfd >= 0)
			check_pipe(wfd, fds[1]);
	}
	expect(22, "none", fds, 0);
	if (expect(22, "solo", fds, 1))
		check_alone(fds[0], 6, "GH", "datagram \"solo\"");
	case_check_empty(22, "fd 22");
}

static __attribute__((noreturn)) void child(void)
{
	char buf[16];

	close(30);
	close(31);
	case_wait();
	if (case_sabotage("stream_msg"))
		recv(20, buf, sizeof(buf), 0);
	if (case_sabotage("dgram_msg"))
		recv(22, buf, sizeof(buf), 0);
	child_checks();
	case_child_exit();
}

static void parent_checks(void)
{
	char buf[16] = "";

	case_check(lseek(30, 0, SEEK_CUR) == 7,
		   "fd 30: offset %jd, want 7 after the child's two reads through its copies in flight",
		   (intmax_t)lseek(30, 0, SEEK_CUR));
	case_check(case_poll(31, POLLIN, 2000) && read(31, buf, sizeof(buf) - 1) == 7 &&
		   !strcmp(buf, "through"),
		   "fd 31: read \"%s\", want \"through\" from the write end in flight", buf);
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	setup();
	pid = case_fork();
	if (pid == 0)
		child();
	for (int fd = 20; fd <= 23; fd++)
		close(fd);
	case_ready_wait();
	if (case_sabotage("offset"))
		lseek(30, 0, SEEK_SET);
	case_check_child(pid, "the child");
	parent_checks();
	case_finish();
}
