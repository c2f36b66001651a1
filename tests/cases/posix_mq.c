/*
 * posix_mq: POSIX message queues of the tree's own ipc namespace (the root makes it with
 * unshare(CLONE_NEWIPC)) come back with their attributes, owner, mode and messages in
 * priority order; their descriptors come back with their access mode and O_NONBLOCK.
 *
 *   /crest-mq  maxmsg 5, msgsize 64, mode 0640, owner 1234:5678; messages "low" (1),
 *              "high" (9), "low2" (1), "mid" (5). fd 40 O_RDWR|O_NONBLOCK, fd 41 O_WRONLY,
 *              fd 42 (the child's) O_RDONLY.
 *   /crest-idle  maxmsg 2, msgsize 16, opened by nobody, one message "idle" (0).
 *
 * After SIGTERM the child receives "high" through fd 42 and the parent must then find the
 * others through fd 40: "mid", "low", "low2".
 */
#include "case.h"

#include <mqueue.h>
#include <sched.h>

static const struct { const char *text; unsigned int prio; } sent[] = {
	{ "low", 1 }, { "high", 9 }, { "low2", 1 }, { "mid", 5 },
};

static void make_queue(void)
{
	struct mq_attr attr = { .mq_maxmsg = 5, .mq_msgsize = 64 };
	mqd_t q = mq_open("/crest-mq", O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0640, &attr);

	if (q < 0)
		case_die("mq_open /crest-mq: %m");
	for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++)
		if (mq_send(q, sent[i].text, strlen(sent[i].text), sent[i].prio))
			case_die("mq_send: %m");
	if (fchown(q, 1234, 5678) || fchmod(q, 0640))
		case_die("fchown /crest-mq: %m");
	case_move_fd(q, 40, 0);
	case_move_fd(mq_open("/crest-mq", O_WRONLY), 41, O_CLOEXEC);
	attr.mq_maxmsg = 2;
	attr.mq_msgsize = 16;
	q = mq_open("/crest-idle", O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
	if (q < 0 || mq_send(q, "idle", 4, 0))
		case_die("/crest-idle: %m");
	close(q);
}

static void check_attr(int fd, long flags, long maxmsg, long msgsize, long curmsgs)
{
	struct mq_attr a;

	if (mq_getattr(fd, &a)) {
		case_fail("fd %d: mq_getattr: %m", fd);
		return;
	}
	case_check(a.mq_flags == flags && a.mq_maxmsg == maxmsg && a.mq_msgsize == msgsize &&
		   a.mq_curmsgs == curmsgs,
		   "fd %d: flags %#lx maxmsg %ld msgsize %ld curmsgs %ld, want %#lx %ld %ld %ld", fd,
		   a.mq_flags, a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, flags, maxmsg, msgsize, curmsgs);
}

static void expect(int fd, const char *text, unsigned int prio)
{
	char buf[64] = "";
	unsigned int got = 0;
	ssize_t n = mq_receive(fd, buf, sizeof(buf), &got);

	case_check(n == (ssize_t)strlen(text) && !memcmp(buf, text, n) && got == prio,
		   "fd %d: received \"%.*s\" (%u), want \"%s\" (%u)", fd, n > 0 ? (int)n : 0, buf,
		   got, text, prio);
}

static void check_idle(void)
{
	mqd_t q = mq_open("/crest-idle", O_RDONLY | O_NONBLOCK);
	struct stat st;

	if (q < 0) {
		case_fail("/crest-idle: mq_open: %m");
		return;
	}
	check_attr(q, O_NONBLOCK, 2, 16, 1);
	expect(q, "idle", 0);
	case_check(!fstat(q, &st) && (st.st_mode & 07777) == 0600, "/crest-idle: mode %o",
		   st.st_mode & 07777);
	close(q);
}

static void child_setup(void)
{
	case_move_fd(mq_open("/crest-mq", O_RDONLY), 42, 0);
}

static void child(void)
{
	case_wait();
	check_attr(42, 0, 5, 64, 4);
	case_check((fcntl(42, F_GETFL) & O_ACCMODE) == O_RDONLY, "fd 42: not read-only");
	expect(42, "high", 9);
	case_child_exit();
}

int main(int argc, char **argv)
{
	struct stat st;
	pid_t pid;

	case_init(argc, argv);
	if (unshare(CLONE_NEWIPC))
		case_die("unshare(CLONE_NEWIPC): %m");
	make_queue();
	pid = case_fork_after(child_setup, child, "open the queue");
	case_ready_wait();
	if (case_sabotage("mq_message"))
		expect(40, "high", 9);
	case_check_child(pid, "child");
	check_attr(40, O_NONBLOCK, 5, 64, 3);
	case_check((fcntl(41, F_GETFL) & O_ACCMODE) == O_WRONLY, "fd 41: not write-only");
	case_check(fcntl(41, F_GETFD) == FD_CLOEXEC, "fd 41: FD_CLOEXEC lost");
	case_check(!fstat(40, &st) && st.st_uid == 1234 && st.st_gid == 5678 &&
		   (st.st_mode & 07777) == 0640, "/crest-mq: owner %u:%u mode %o", st.st_uid,
		   st.st_gid, st.st_mode & 07777);
	expect(40, "mid", 5);
	expect(40, "low", 1);
	expect(40, "low2", 1);
	check_idle();
	if (!case_nfail)
		case_say("PASS");
	return case_nfail ? 1 : 0;
}
