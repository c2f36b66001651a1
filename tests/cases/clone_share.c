/*
 * clone_share: processes (not threads) that share one fd table (clone with CLONE_FILES) or
 * one cwd, root and umask (CLONE_FS) still share them, as one object, after restore.
 *
 *   P   root: opens fd 10 (file a), then cwd d1 once everyone is set up
 *   ├── D   clone(CLONE_FS): its own table (fd 10 is file d), P's fs
 *   │   ├── E   clone(CLONE_FILES) from D, which then calls unshare(CLONE_FILES): E and F
 *   │   └── F   share a table that their parent no longer has (crest clones F from E with
 *   │           CLONE_PARENT)
 *   └── C   clone(CLONE_FILES | CLONE_FS): opens fd 11 (file b), which P sees, and an epoll
 *       │   (fd 30) watching a pipe (fds 31, 32); umask 027
 *       └── G   clone(CLONE_FILES) from C: P's table (opens fd 14, file g), an fs of its own
 *               (cwd d2, umask 077)
 *
 * After SIGTERM (P forwards it to C and D, C to G, D to E and F) every process first checks what it sees
 * (fds, cwd, umask), then they prove the sharing is live, one step after the other through a
 * shared page: P opens fd 20 and moves to d3; C sees both, closes fd 11 and sets umask 022;
 * G sees fd 20 and fd 11 gone, keeps its own cwd and umask, opens fd 21 and writes to the
 * pipe; D does not see fd 20 (its own table) but sees d3 and umask 022; P finally sees fd 11
 * closed, fd 21 open, and the epoll reports the pipe readable. Then E opens fd 40, F sees it
 * and closes fd 10, E sees that; D, with a table of its own, sees neither.
 * A copy of the table or of the fs instead of the one shared object fails these checks.
 */
#include <sched.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include "case.h"

#define STEP_MS 10000

/* The shared page: setup and check progress. */
struct shared {
	int set_up;		/* processes done with their setup */
	int checked;		/* processes done with their static checks */
	int step;		/* the live steps, in order: P 1, C 2, G 3, D 4 */
	int ef_step;		/* E and F's steps: E 1, F 2, E 3 */
};

static struct shared *sh;
static char path_a[PATH_MAX], path_b[PATH_MAX], path_d[PATH_MAX], path_g[PATH_MAX];
static char path_late[PATH_MAX], path_g2[PATH_MAX], path_e[PATH_MAX];
static char dir1[PATH_MAX], dir2[PATH_MAX], dir3[PATH_MAX];

/* clone() that returns twice like fork() (no new stack, no CLONE_VM); says "pid N". */
static pid_t clone_with(unsigned long flags)
{
	pid_t pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);

	if (pid < 0)
		case_die("clone %#lx: %m", flags);
	if (pid > 0)
		case_say("pid %d", pid);
	return pid;
}

static void make_paths(void)
{
	char *files[] = { path_a, path_b, path_d, path_g, path_late, path_g2, path_e };
	const char *names[] = { "a", "b", "d", "g", "late", "g2", "e" };
	char *dirs[] = { dir1, dir2, dir3 };
	const char *dnames[] = { "d1", "d2", "d3" };

	for (size_t i = 0; i < 7; i++)
		case_path(files[i], PATH_MAX, names[i]);
	for (size_t i = 0; i < 3; i++) {
		char tmp[PATH_MAX];

		case_path(tmp, sizeof(tmp), dnames[i]);
		if (mkdir(tmp, 0700) && errno != EEXIST)
			case_die("mkdir %s: %m", tmp);
		if (!realpath(tmp, dirs[i]))
			case_die("realpath %s: %m", tmp);
	}
	for (size_t i = 0; i < 7; i++) {
		char tmp[PATH_MAX];
		int fd = open(files[i], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0)
			case_die("create %s: %m", files[i]);
		close(fd);
		if (!realpath(files[i], tmp))
			case_die("realpath %s: %m", files[i]);
		snprintf(files[i], PATH_MAX, "%s", tmp);
	}
}

static void step_done(int *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
}

static bool wait_for(int *counter, int want, const char *who, const char *what)
{
	if (case_wait_until(__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= want, STEP_MS))
		return true;
	case_fail("%s: timed out waiting for %s", who, what);
	return false;
}

static void check_fd(const char *who, int fd, const char *want)
{
	char link[PATH_MAX];

	if (case_fd_link(fd, link, sizeof(link)) < 0)
		case_fail("%s: fd %d is not open, want %s", who, fd, want);
	else
		case_check(!strcmp(link, want), "%s: fd %d is %s, want %s", who, fd, link, want);
}

static void check_closed(const char *who, int fd)
{
	char link[PATH_MAX];

	case_check(case_fd_link(fd, link, sizeof(link)) < 0, "%s: fd %d is open (%s), want closed",
		   who, fd, link);
}

static void check_fs(const char *who, const char *dir, mode_t mask)
{
	char cwd[PATH_MAX];
	mode_t now = umask(0);

	umask(now);
	if (!getcwd(cwd, sizeof(cwd)))
		case_fail("%s: getcwd: %m", who);
	else
		case_check(!strcmp(cwd, dir), "%s: cwd %s, want %s", who, cwd, dir);
	case_check(now == mask, "%s: umask %03o, want %03o", who, now, mask);
}

/* Waits for child pid (SIGTERM already sent) and turns its status into FAIL lines. */
static void reap(pid_t pid, const char *what)
{
	int status;

	if (case_wait_child(pid, STEP_MS + 5000, &status)) {
		case_fail("%s (pid %d): waitpid: %m", what, pid);
		kill(pid, SIGKILL);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		case_fail("%s (pid %d) failed its checks (status %#x)", what, pid, status);
	}
}

static __attribute__((noreturn)) void run_g(void)
{
	case_open_at(path_g, O_RDONLY, 0, 14);
	if (chdir(dir2))
		case_die("G: chdir %s: %m", dir2);
	umask(077);
	step_done(&sh->set_up);
	case_wait();
	check_fd("G", 10, path_a);
	check_fd("G", 11, path_b);
	check_fd("G", 14, path_g);
	check_fs("G", dir2, 077);
	step_done(&sh->checked);
	if (wait_for(&sh->step, 2, "G", "C's step")) {
		check_fd("G", 20, path_late);
		check_closed("G", 11);
		check_fs("G", dir2, 077);
		case_open_at(path_g2, O_RDONLY, 0, 21);
		if (write(32, "x", 1) != 1)
			case_fail("G: write to the pipe (fd 32): %m");
	}
	step_done(&sh->step);
	case_child_exit();
}

/* An epoll at fd 30 watching the read end (fd 31) of a pipe (31, 32), in the shared table. */
static void make_epoll(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 31 };
	int p[2];

	if (pipe2(p, 0))
		case_die("C: pipe: %m");
	case_move_fd(p[0], 31, 0);
	case_move_fd(p[1], 32, 0);
	case_move_fd(epoll_create1(0), 30, 0);
	if (epoll_ctl(30, EPOLL_CTL_ADD, 31, &ev))
		case_die("C: epoll_ctl: %m");
}

static __attribute__((noreturn)) void run_c(void)
{
	pid_t g;

	case_open_at(path_b, O_RDWR, 0, 11);
	make_epoll();
	umask(027);
	g = clone_with(CLONE_FILES);
	if (g == 0)
		run_g();
	step_done(&sh->set_up);
	case_wait();
	kill(g, SIGTERM);
	if (case_sabotage("unshare_files") && unshare(CLONE_FILES))
		case_fail("C: unshare(CLONE_FILES): %m");
	check_fd("C", 10, path_a);
	check_fd("C", 11, path_b);
	check_fd("C", 14, path_g);
	check_fs("C", dir1, 027);
	step_done(&sh->checked);
	if (wait_for(&sh->step, 1, "C", "P's step")) {
		check_fd("C", 20, path_late);
		check_fs("C", dir3, 027);
		close(11);
		umask(022);
	}
	step_done(&sh->step);
	reap(g, "G");
	case_child_exit();
}

/* E and F share the table D had when it cloned them (fd 10 is file d), D no longer does. */
static __attribute__((noreturn)) void run_e(void)
{
	case_wait();
	check_fd("E", 10, path_d);
	case_open_at(path_e, O_RDONLY, 0, 40);
	step_done(&sh->ef_step);
	if (wait_for(&sh->ef_step, 2, "E", "F's step"))
		check_closed("E", 10);
	step_done(&sh->ef_step);
	case_child_exit();
}

static __attribute__((noreturn)) void run_f(pid_t parent)
{
	case_wait();
	if (case_sabotage("unshare_siblings") && unshare(CLONE_FILES))
		case_fail("F: unshare(CLONE_FILES): %m");
	case_check(getppid() == parent, "F: parent %d, want %d", getppid(), parent);
	if (wait_for(&sh->ef_step, 1, "F", "E's step")) {
		check_fd("F", 40, path_e);
		close(10);
	}
	step_done(&sh->ef_step);
	case_child_exit();
}

/* E and F (sharing one table without D), then D checks its own table saw none of it. */
static void check_siblings(pid_t e, pid_t f)
{
	kill(e, SIGTERM);
	kill(f, SIGTERM);
	if (wait_for(&sh->ef_step, 3, "D", "E and F")) {
		check_fd("D", 10, path_d);
		check_closed("D", 40);
	}
	reap(e, "E");
	reap(f, "F");
}

static __attribute__((noreturn)) void run_d(void)
{
	pid_t e, f, self = getpid();

	case_open_at(path_d, O_RDONLY, 0, 10);
	e = clone_with(CLONE_FILES);
	if (e == 0)
		run_e();
	f = clone_with(CLONE_FILES);
	if (f == 0)
		run_f(self);
	if (unshare(CLONE_FILES))
		case_die("D: unshare(CLONE_FILES): %m");
	step_done(&sh->set_up);
	case_wait();
	if (case_sabotage("unshare_fs") && unshare(CLONE_FS))
		case_fail("D: unshare(CLONE_FS): %m");
	check_fd("D", 10, path_d);
	check_closed("D", 11);
	check_closed("D", 30);
	check_closed("D", 14);
	check_fs("D", dir1, 027);
	step_done(&sh->checked);
	if (wait_for(&sh->step, 3, "D", "G's step")) {
		check_closed("D", 20);
		check_fs("D", dir3, 022);
	}
	step_done(&sh->step);
	check_siblings(e, f);
	case_child_exit();
}

/* The epoll C made reports the byte G wrote into the pipe. */
static void check_epoll(void)
{
	struct epoll_event ev;
	int n = epoll_wait(30, &ev, 1, 2000);

	case_check(n == 1 && ev.data.u64 == 31 && (ev.events & EPOLLIN),
		   "P: epoll fd 30 returned %d (data %llu, events %#x), want the pipe readable", n,
		   n == 1 ? (unsigned long long)ev.data.u64 : 0ULL, n == 1 ? ev.events : 0);
}

/* P's part of the checks once C, G and D have checked what they see. */
static void check_p(void)
{
	check_fd("P", 10, path_a);
	check_fd("P", 11, path_b);
	check_fd("P", 14, path_g);
	check_fs("P", dir1, 027);
	if (!wait_for(&sh->checked, 3, "P", "the others' checks"))
		return;
	case_open_at(path_late, O_RDONLY, 0, 20);
	if (chdir(dir3))
		case_fail("P: chdir %s: %m", dir3);
	step_done(&sh->step);
	if (!wait_for(&sh->step, 4, "P", "D's step"))
		return;
	check_closed("P", 11);
	check_fd("P", 21, path_g2);
	check_fs("P", dir3, 022);
	check_epoll();
}

int main(int argc, char **argv)
{
	pid_t c, d;

	case_init(argc, argv);
	make_paths();
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		case_die("mmap: %m");
	umask(022);
	case_open_at(path_a, O_RDONLY, 0, 10);
	d = clone_with(CLONE_FS);
	if (d == 0)
		run_d();
	c = clone_with(CLONE_FILES | CLONE_FS);
	if (c == 0)
		run_c();
	if (!wait_for(&sh->set_up, 3, "P", "the setup"))
		case_die("the children did not set up");
	if (chdir(dir1))
		case_die("chdir %s: %m", dir1);
	case_ready_wait();
	kill(c, SIGTERM);
	kill(d, SIGTERM);
	check_p();
	reap(c, "C");
	reap(d, "D");
	case_finish();
}
