/*
 * tree: a process tree keeps its shape, its pids, process groups and sessions, and a zombie.
 *
 *   R   session leader and group leader (the driver starts it with setsid)
 *   ├── C1  leader of its own process group (setpgid)
 *   │   ├── G1  leader of a new session (setsid)
 *   │   └── G2  member of C1's group
 *   ├── C2  exited with status 7, not reaped: a zombie until R checks
 *   └── C3  member of R's group
 *
 * Every live process records getpid/getppid/getpgid/getsid before "ready" and compares them
 * after SIGTERM, which R forwards down the tree; each parent waits for its children and fails
 * unless all of them passed. R also checks that C2 is still a zombie and reaps it with status 7.
 * The pipe used to synchronise setup is closed everywhere before "ready", so that the image
 * holds no pipe.
 */
#include "case.h"

struct ids {
	const char *name;
	pid_t pid, ppid, pgid, sid;
};

static struct ids me;

static void record(const char *name)
{
	me.name = name;
	me.pid = getpid();
	me.ppid = getppid();
	me.pgid = getpgid(0);
	me.sid = getsid(0);
}

static void check_ids(void)
{
	case_check(getpid() == me.pid, "%s: pid %d, want %d", me.name, getpid(), me.pid);
	/* R's parent is whoever restored it (crest, or the driver as subreaper after -d) */
	if (strcmp(me.name, "R"))
		case_check(getppid() == me.ppid, "%s: ppid %d, want %d", me.name, getppid(),
			   me.ppid);
	case_check(getpgid(0) == me.pgid, "%s: pgid %d, want %d", me.name, getpgid(0), me.pgid);
	case_check(getsid(0) == me.sid, "%s: sid %d, want %d", me.name, getsid(0), me.sid);
}

/* A setup step is done: tell R through the pipe, then close it for good. */
static void setup_done(int *p)
{
	if (write(p[1], "x", 1) != 1)
		case_die("%s: write to setup pipe: %m", me.name);
	close(p[1]);
}

static __attribute__((noreturn)) void leaf(const char *name, int *p, bool new_session)
{
	close(p[0]);
	if (new_session && setsid() < 0)
		case_die("%s: setsid: %m", name);
	record(name);
	setup_done(p);
	case_wait();
	if (!strcmp(name, "G2") && case_sabotage("pgid"))
		setpgid(0, 0);
	if (!strcmp(name, "C3") && case_sabotage("sid"))
		setsid();
	if (!strcmp(name, "G1") && case_sabotage("grandchild"))
		me.pid++;
	check_ids();
	case_child_exit();
}

static __attribute__((noreturn)) void c1(int *p)
{
	pid_t g1, g2;

	close(p[0]);
	if (setpgid(0, 0))
		case_die("C1: setpgid: %m");
	record("C1");
	g1 = case_fork();
	if (g1 == 0)
		leaf("G1", p, true);
	g2 = case_fork();
	if (g2 == 0)
		leaf("G2", p, false);
	setup_done(p);
	case_wait();
	check_ids();
	case_check(getpgid(g2) == me.pid, "C1: G2's pgid is %d, want %d", getpgid(g2), me.pid);
	case_check(getsid(g1) == g1, "C1: G1's sid is %d, want %d", getsid(g1), g1);
	case_check_child(g1, "G1");
	case_check_child(g2, "G2");
	case_child_exit();
}

/* R's view of the zombie: still there, still its child, exit status 7. */
static void check_zombie(pid_t c2)
{
	char path[64], stat[512], *p;
	int status;
	pid_t r;

	snprintf(path, sizeof(path), "/proc/%d/stat", c2);
	if (case_read_file(path, stat, sizeof(stat)) < 0) {
		case_fail("C2 (pid %d): %s: %m", c2, path);
	} else if ((p = strrchr(stat, ')')) && p[1] == ' ') {
		case_check(p[2] == 'Z', "C2 (pid %d): state %c, want Z (zombie)", c2, p[2]);
		case_check(atoi(p + 4) == getpid(), "C2 (pid %d): ppid %d, want %d", c2, atoi(p + 4),
			   getpid());
	}
	r = waitpid(c2, &status, WNOHANG);
	if (r != c2)
		case_fail("C2 (pid %d): waitpid returned %d: %m", c2, r);
	else
		case_check(WIFEXITED(status) && WEXITSTATUS(status) == 7,
			   "C2 (pid %d): status %#x, want exit 7", c2, status);
}

int main(int argc, char **argv)
{
	int p[2], status;
	pid_t c1_pid, c2, c3;
	siginfo_t si;
	char buf[8];
	ssize_t n, got = 0;

	case_init(argc, argv);
	if (pipe(p))
		case_die("pipe: %m");
	record("R");
	c1_pid = case_fork();
	if (c1_pid == 0)
		c1(p);
	/* Also from the parent, so that the group exists whichever runs first. */
	setpgid(c1_pid, c1_pid);
	c2 = case_fork();
	if (c2 == 0) {
		close(p[0]);
		close(p[1]);
		_exit(7);
	}
	c3 = case_fork();
	if (c3 == 0)
		leaf("C3", p, false);
	close(p[1]);
	/* EOF: every process has finished its setup and closed the pipe. */
	while ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		got += n > 0 ? n : 0;
	close(p[0]);
	if (got != 4)
		case_die("%zd setup messages, want 4", got);
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, c2, &si, WEXITED | WNOWAIT))
		case_die("waitid(C2): %m");
	case_ready_wait();

	if (case_sabotage("zombie"))
		waitpid(c2, &status, 0);
	check_ids();
	case_check(getpgid(c1_pid) == c1_pid, "R: C1's pgid is %d, want %d", getpgid(c1_pid), c1_pid);
	case_check(getpgid(c3) == me.pgid, "R: C3's pgid is %d, want %d", getpgid(c3), me.pgid);
	check_zombie(c2);
	case_check_child(c1_pid, "C1");
	case_check_child(c3, "C3");
	case_finish();
}
