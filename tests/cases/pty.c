/*
 * pty: pseudo-terminal pairs with both ends in the tree come back at the same /dev/pts/N with
 * their settings, window size, session, foreground group, packet mode, lock and exclusive
 * mode, and data flows through them again.
 *
 *   root R (a session of its own, no controlling terminal)
 *     10  master A (blocking)
 *     11  master B, O_NONBLOCK, packet mode, slave locked (after 12 was opened)
 *     12  slave B, O_RDWR, exclusive mode, chmod 0604
 *     13  master C, O_NONBLOCK: its slave never opened (locked, reads say EAGAIN)
 *     14  master D, O_NONBLOCK: its slave opened and closed (poll HUP, reads say EIO)
 *   child L: leader of a new session whose controlling terminal is slave A (fd 5): raw mode
 *       with ISIG, VINTR ^X, 115200 baud, window 33x111 (555x777 pixels), foreground group G
 *     grandchild G: forked by L before L took the terminal, so it is in L's session without a
 *       controlling terminal, leads its own group (the foreground), holds slave A (fd 6) and
 *       answers every read with "<" what it read ">".
 *     grandchild M: forked by L after L took the terminal, so a member of L's session (and
 *       group) with slave A as its controlling terminal, inherited: crest's leader takes the
 *       terminal back before it forks, M inherits it again, and G drops what it inherits.
 *
 * After SIGTERM, R types "hi\r" into master A and must get "<hi\r>" back at once (raw mode: no
 * line editing, no CR->NL, no echo), compares every setting, reads a packet from B, and checks
 * the states of C and D; L checks that slave A is its controlling terminal (tcgetpgrp, TIOCGSID,
 * tty_nr) with G in the foreground; G checks that it still has none; M that slave A is its
 * controlling terminal (tty_nr, and /dev/tty opens onto L's session's terminal).
 */
#include "case.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

#define FD_A 10
#define FD_B 11
#define FD_B_SLAVE 12
#define FD_C 13
#define FD_D 14
#define L_SLAVE 5
#define G_SLAVE 6

static const struct winsize want_ws = { 33, 111, 555, 777 };
static char path_a[64], path_b[64], path_c[64], path_d[64];
static struct termios saved_tio;	/* of A, once L has set it */
static pid_t l_pid, g_pid, m_pid;

/* Moves fd to number want (closing the original). */
static void move_fd(int fd, int want)
{
	if (fd < 0)
		case_die("open for fd %d: %m", want);
	if (fd != want && (dup2(fd, want) != want || close(fd)))
		case_die("dup2 to %d: %m", want);
}

static int new_master(int want, int flags, char *path, size_t len)
{
	int fd = posix_openpt(O_RDWR | O_NOCTTY | flags);

	move_fd(fd, want);
	if (ptsname_r(want, path, len))
		case_die("ptsname of fd %d: %m", want);
	return want;
}

/* Reads what fd shows within ms (poll first: the tty hands data on asynchronously). */
static ssize_t read_within(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int64_t end = case_now_ns(CLOCK_MONOTONIC) + (int64_t)ms * 1000000;
	size_t got = 0;

	while (got < len) {
		int left = (int)((end - case_now_ns(CLOCK_MONOTONIC)) / 1000000);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		n = read(fd, buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* ---- G: the grandchild in the foreground ---- */

static long proc_tty_nr(pid_t pid)
{
	char path[64], buf[1024], *p;
	long tty_nr = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (case_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	sscanf(p + 1, " %*c %*d %*d %*d %ld", &tty_nr);
	return tty_nr;
}

static __attribute__((noreturn)) void grandchild(void)
{
	char buf[256], out[260], name[64];

	setpgid(0, 0);
	close_range(3, ~0U, 0);
	move_fd(open(path_a, O_RDWR | O_NOCTTY), G_SLAVE);
	while (!case_term) {
		struct pollfd p = { G_SLAVE, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(G_SLAVE, buf, sizeof(buf));
		if (n <= 0)
			continue;
		out[0] = '<';
		memcpy(out + 1, buf, (size_t)n);
		out[n + 1] = '>';
		if (write(G_SLAVE, out, (size_t)n + 2) != n + 2)
			case_fail("G: cannot answer on %s: %m", path_a);
	}
	case_check(ttyname_r(G_SLAVE, name, sizeof(name)) == 0 && !strcmp(name, path_a),
		   "G: fd %d is %s, want %s", G_SLAVE, name, path_a);
	case_check(getpgid(0) == getpid(), "G: in process group %d, want its own", getpgid(0));
	case_check(getsid(0) == l_pid, "G: in session %d, want L's %d", getsid(0), l_pid);
	case_check(proc_tty_nr(getpid()) == 0, "G: has controlling terminal %#lx, want none",
		   proc_tty_nr(getpid()));
	case_child_exit();
}

/* ---- L: the session leader ---- */

static void set_terminal(void)
{
	struct termios t;

	if (tcgetattr(L_SLAVE, &t))
		case_die("tcgetattr: %m");
	cfmakeraw(&t);
	t.c_lflag |= ISIG;
	t.c_cc[VINTR] = 0x18;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	cfsetspeed(&t, B115200);
	if (tcsetattr(L_SLAVE, TCSANOW, &t) || ioctl(L_SLAVE, TIOCSWINSZ, &want_ws))
		case_die("L: cannot set up %s: %m", path_a);
}

static void leader_checks(void)
{
	char name[64] = "";
	struct stat st;
	pid_t sid = 0;

	case_check(tcgetpgrp(L_SLAVE) == g_pid, "L: foreground group of %s is %d (%m), want G %d",
		   path_a, tcgetpgrp(L_SLAVE), g_pid);
	case_check(ioctl(L_SLAVE, TIOCGSID, &sid) == 0 && sid == getpid(),
		   "L: session of %s is %d (%m), want L %d", path_a, sid, getpid());
	case_check(ttyname_r(L_SLAVE, name, sizeof(name)) == 0 && !strcmp(name, path_a),
		   "L: fd %d is %s, want %s", L_SLAVE, name, path_a);
	case_check(fstat(L_SLAVE, &st) == 0 && proc_tty_nr(getpid()) == (long)st.st_rdev,
		   "L: controlling terminal %#lx, want %s (%#lx)", proc_tty_nr(getpid()), path_a,
		   (long)st.st_rdev);
	case_check(getsid(0) == getpid(), "L: in session %d, want its own", getsid(0));
}

static void leader_sabotage(void)
{
	sigset_t ttou, old;

	if (case_sabotage("pgrp")) {
		/* from the background: SIGTTOU, unless blocked */
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, &old);
		tcsetpgrp(L_SLAVE, getpgid(0));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (case_sabotage("ctty")) {
		signal(SIGHUP, SIG_IGN);
		ioctl(L_SLAVE, TIOCNOTTY);
	}
}

/* M: a member of L's session that inherited slave A as controlling terminal. */
static __attribute__((noreturn)) void member(void)
{
	struct stat st;
	pid_t sid = 0;
	int fd;

	case_wait();
	if (case_sabotage("member_ctty"))
		ioctl(L_SLAVE, TIOCNOTTY);
	case_check(fstat(L_SLAVE, &st) == 0 && proc_tty_nr(getpid()) == (long)st.st_rdev,
		   "M: controlling terminal %#lx, want %s (%#lx)", proc_tty_nr(getpid()), path_a,
		   (long)st.st_rdev);
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		case_fail("M: cannot open /dev/tty: %m");
	else
		case_check(ioctl(fd, TIOCGSID, &sid) == 0 && sid == l_pid,
			   "M: /dev/tty is the terminal of session %d (%m), want L's %d", sid, l_pid);
	case_child_exit();
}

static __attribute__((noreturn)) void leader(void)
{
	if (setsid() < 0)
		case_die("L: setsid: %m");
	l_pid = getpid();
	g_pid = case_fork();
	if (g_pid == 0)
		grandchild();
	setpgid(g_pid, g_pid);
	close_range(3, ~0U, 0);
	move_fd(open(path_a, O_RDWR | O_NOCTTY), L_SLAVE);
	if (ioctl(L_SLAVE, TIOCSCTTY, 0))
		case_die("L: TIOCSCTTY %s: %m", path_a);
	set_terminal();
	if (tcsetpgrp(L_SLAVE, g_pid))
		case_die("L: tcsetpgrp %d: %m", g_pid);
	m_pid = case_fork();
	if (m_pid == 0)
		member();
	case_wait();
	leader_sabotage();
	/* G first: when the leader exits, the kernel hangs the foreground group up */
	case_check_child(g_pid, "G, the foreground grandchild");
	case_check_child(m_pid, "M, the member with the terminal");
	leader_checks();
	case_child_exit();
}

/* ---- R: the masters ---- */

static void make_b_c_d(void)
{
	int one = 1, fd;

	new_master(FD_B, O_NONBLOCK, path_b, sizeof(path_b));
	if (unlockpt(FD_B))
		case_die("unlockpt B: %m");
	move_fd(open(path_b, O_RDWR | O_NOCTTY), FD_B_SLAVE);
	if (ioctl(FD_B_SLAVE, TIOCEXCL) || fchmod(FD_B_SLAVE, 0604) || ioctl(FD_B, TIOCPKT, &one) ||
	    ioctl(FD_B, TIOCSPTLCK, &one))
		case_die("setting up pair B: %m");
	new_master(FD_C, O_NONBLOCK, path_c, sizeof(path_c));
	new_master(FD_D, O_NONBLOCK, path_d, sizeof(path_d));
	if (unlockpt(FD_D) || (fd = open(path_d, O_RDWR | O_NOCTTY)) < 0 || close(fd))
		case_die("opening and closing slave D: %m");
}

/* Sends data into master A and checks G's answer. */
static bool ping(const char *data, bool report)
{
	char want[64], got[64] = "";
	ssize_t n;

	snprintf(want, sizeof(want), "<%s>", data);
	if (write(FD_A, data, strlen(data)) != (ssize_t)strlen(data)) {
		if (report)
			case_fail("A: write: %m");
		return false;
	}
	n = read_within(FD_A, got, strlen(want), 3000);
	if (n == (ssize_t)strlen(want) && !memcmp(got, want, (size_t)n))
		return true;
	if (report)
		case_fail("A: typed %zu bytes, got back %zd: \"%.*s\" (want \"%s\")", strlen(data), n,
			  (int)(n > 0 ? n : 0), got, want);
	return false;
}

/*
 * Waits until L has set everything up and G answers. The foreground group of A is none until
 * L takes A, then L's, and G's (G's pid, as G leads it) once L is done.
 */
static void wait_setup(void)
{
	int64_t end = case_now_ns(CLOCK_MONOTONIC) + 5000000000LL;
	pid_t fg = 0;

	while ((ioctl(FD_A, TIOCGPGRP, &fg) || fg <= 0 || fg == l_pid) &&
	       case_now_ns(CLOCK_MONOTONIC) < end)
		case_sleep_ms(5);
	if (fg <= 0 || fg == l_pid)
		case_die("L did not give the foreground of %s to G", path_a);
	g_pid = fg;
	if (!ping("ping", false))
		case_die("G does not answer on %s", path_a);
	if (tcgetattr(FD_A, &saved_tio))
		case_die("tcgetattr A: %m");
}

static void sabotage(void)
{
	struct winsize ws = { 1, 2, 3, 4 };
	struct termios t = saved_tio;
	int zero = 0;

	if (case_sabotage("termios")) {
		t.c_cc[VINTR] = 3;
		tcsetattr(FD_A, TCSANOW, &t);
	}
	if (case_sabotage("winsize"))
		ioctl(FD_A, TIOCSWINSZ, &ws);
	if (case_sabotage("packet"))
		ioctl(FD_B, TIOCPKT, &zero);
	if (case_sabotage("lock"))
		ioctl(FD_B, TIOCSPTLCK, &zero);
	if (case_sabotage("excl"))
		ioctl(FD_B_SLAVE, TIOCNXCL);
	if (case_sabotage("index"))
		move_fd(posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK), FD_C);
	if (case_sabotage("hup"))
		ioctl(FD_D, TIOCGPTPEER, O_RDWR | O_NOCTTY);	/* kept open */
}

static void check_name(int fd, const char *want)
{
	char name[64] = "";

	case_check(ptsname_r(fd, name, sizeof(name)) == 0 && !strcmp(name, want),
		   "fd %d: the pair is %s now, want %s", fd, name, want);
}

static void check_a(void)
{
	struct termios t;
	struct winsize ws = { 0 };
	pid_t fg = 0, sid = 0;

	memset(&t, 0, sizeof(t));
	check_name(FD_A, path_a);
	case_check(tcgetattr(FD_A, &t) == 0 && !memcmp(&t, &saved_tio, sizeof(t)),
		   "A: settings lflag %#x iflag %#x VINTR %#x speed %u, want %#x %#x %#x %u",
		   t.c_lflag, t.c_iflag, t.c_cc[VINTR], cfgetospeed(&t), saved_tio.c_lflag,
		   saved_tio.c_iflag, saved_tio.c_cc[VINTR], cfgetospeed(&saved_tio));
	case_check(ioctl(FD_A, TIOCGWINSZ, &ws) == 0 && !memcmp(&ws, &want_ws, sizeof(ws)),
		   "A: window %ux%u (%ux%u), want 33x111 (555x777)", ws.ws_row, ws.ws_col,
		   ws.ws_xpixel, ws.ws_ypixel);
	case_check(ioctl(FD_A, TIOCGPGRP, &fg) == 0 && fg == g_pid,
		   "A: foreground group %d, want G %d", fg, g_pid);
	case_check(ioctl(FD_A, TIOCGSID, &sid) == 0 && sid == l_pid,
		   "A: session %d, want L %d", sid, l_pid);
	ping("hi\r", true);
}

static void check_b(void)
{
	int pkt = -1, lock = -1, excl = -1;
	char buf[8] = "";
	struct stat st;
	ssize_t n;

	check_name(FD_B, path_b);
	case_check(ioctl(FD_B, TIOCGPKT, &pkt) == 0 && pkt == 1, "B: packet mode %d, want 1", pkt);
	case_check(ioctl(FD_B, TIOCGPTLCK, &lock) == 0 && lock == 1, "B: lock %d, want 1", lock);
	case_check(ioctl(FD_B_SLAVE, TIOCGEXCL, &excl) == 0 && excl == 1,
		   "B: slave exclusive mode %d, want 1", excl);
	case_check(fstat(FD_B_SLAVE, &st) == 0 && (st.st_mode & 07777) == 0604,
		   "B: slave mode %o, want 604", st.st_mode & 07777);
	case_check(fcntl(FD_B, F_GETFL) & O_NONBLOCK, "B: master lost O_NONBLOCK");
	/* in packet mode every read starts with a status byte: TIOCPKT_DATA (0) */
	if (write(FD_B_SLAVE, "x", 1) != 1)
		case_fail("B: write to the slave: %m");
	n = read_within(FD_B, buf, 2, 3000);
	case_check(n == 2 && buf[0] == TIOCPKT_DATA && buf[1] == 'x',
		   "B: read %zd bytes %#x %#x from the master, want 0 'x'", n, buf[0], buf[1]);
}

static void check_c_d(void)
{
	struct pollfd p[2] = { { FD_C, POLLIN, 0 }, { FD_D, POLLIN, 0 } };
	int lock = -1;
	char c;

	check_name(FD_C, path_c);
	check_name(FD_D, path_d);
	case_check(ioctl(FD_C, TIOCGPTLCK, &lock) == 0 && lock == 1, "C: lock %d, want 1", lock);
	poll(p, 2, 0);
	case_check(!(p[0].revents & POLLHUP), "C: the master says POLLHUP: its slave never opened");
	case_check(read(FD_C, &c, 1) < 0 && errno == EAGAIN, "C: read: %m, want EAGAIN");
	case_check(p[1].revents & POLLHUP, "D: no POLLHUP: the slave was closed");
	case_check(read(FD_D, &c, 1) < 0 && errno == EIO, "D: read: %m, want EIO");
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	new_master(FD_A, 0, path_a, sizeof(path_a));
	if (unlockpt(FD_A))
		case_die("unlockpt A: %m");
	make_b_c_d();
	l_pid = case_fork();
	if (l_pid == 0)
		leader();
	wait_setup();
	case_ready();
	case_wait();

	sabotage();
	check_a();
	check_b();
	check_c_d();
	case_check_child(l_pid, "L, the session leader");
	case_finish();
}
