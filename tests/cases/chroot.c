/*
 * chroot: each process keeps its own root directory (chroot(2)).
 *
 *   OUTFILE.root/          R's root, holding "marker" ("outer")
 *   OUTFILE.root/inner/    C's root (a chroot inside R's), holding "marker" ("inner")
 *
 * R chroots first and forks C, which chroots further, and clones S with CLONE_FS, which
 * shares R's root (one chroot at restore moves both; a second one would look for the path
 * inside the new root). Each notes the device and inode of its "/" and, after SIGTERM,
 * checks that "/" is still that directory, that "/marker" reads what its own root holds,
 * and that ".." of "/" is "/" (a root, not a plain directory). Output goes to fd 1, opened
 * by the driver before the chroot.
 */
#include <sched.h>

#include "case.h"

struct root_id {
	const char *name, *marker;
	dev_t dev;
	ino_t ino;
};

static struct root_id me;

static void make_dir(const char *dir, const char *marker)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir(dir, 0755) && errno != EEXIST)
		case_die("mkdir %s: %m", dir);
	snprintf(path, sizeof(path), "%s/marker", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, marker, strlen(marker)) != (ssize_t)strlen(marker))
		case_die("%s: %m", path);
	close(fd);
}

static void enter(const char *name, const char *dir, const char *marker)
{
	struct stat st;

	if (chroot(dir) || chdir("/") || stat("/", &st))
		case_die("%s: chroot %s: %m", name, dir);
	me = (struct root_id){ name, marker, st.st_dev, st.st_ino };
}

static void check_root(void)
{
	struct stat root, up;
	char buf[32];
	ssize_t n = -1;
	int fd;

	if (stat("/", &root) || stat("/..", &up)) {
		case_fail("%s: stat of / or /..: %m", me.name);
		return;
	}
	case_check(root.st_dev == me.dev && root.st_ino == me.ino,
		   "%s: / is inode %lu, want %lu (its chroot)", me.name, (unsigned long)root.st_ino,
		   (unsigned long)me.ino);
	case_check(up.st_ino == root.st_ino, "%s: /.. is not / : not its root", me.name);
	fd = open("/marker", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	case_check(!strcmp(buf, me.marker), "%s: /marker reads '%s', want '%s'", me.name, buf,
		   me.marker);
	if (fd >= 0)
		close(fd);
}

static __attribute__((noreturn)) void child(int *p)
{
	close(p[0]);
	enter("C", "/inner", "inner");
	if (write(p[1], "x", 1) != 1)
		case_die("C: write to setup pipe: %m");
	close(p[1]);
	case_wait();
	if (case_sabotage("child_root") && ((mkdir("/deeper", 0755) && errno != EEXIST) ||
					     chroot("/deeper")))
		case_fail("sabotage failed: %m");
	check_root();
	case_child_exit();
}

/* S: R's fs, so R's root. */
static int sharer(void *arg)
{
	(void)arg;
	me.name = "S";
	case_wait();
	check_root();
	case_child_exit();
}

static pid_t clone_sharer(void)
{
	static char stack[256 << 10] __attribute__((aligned(16)));
	pid_t pid = clone(sharer, stack + sizeof(stack), CLONE_FS | SIGCHLD, NULL);

	if (pid < 0)
		case_die("clone(CLONE_FS): %m");
	case_say("pid %d", pid);
	return pid;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], inner[PATH_MAX + 8], x;
	int p[2];
	pid_t c, s;

	case_init(argc, argv);
	case_path(dir, sizeof(dir), "root");
	snprintf(inner, sizeof(inner), "%s/inner", dir);
	make_dir(dir, "outer");
	make_dir(inner, "inner");
	enter("R", dir, "outer");
	if (pipe(p))
		case_die("pipe: %m");
	c = case_fork();
	if (c == 0)
		child(p);
	close(p[1]);
	if (read(p[0], &x, 1) != 1)
		case_die("C did not set up");
	close(p[0]);
	s = clone_sharer();
	case_ready_wait();
	if (case_sabotage("root") && chroot("/inner"))
		case_fail("sabotage failed: %m");
	kill(c, SIGTERM);
	kill(s, SIGTERM);
	check_root();
	case_check_child(c, "C");
	case_check_child(s, "S");
	case_finish();
}
