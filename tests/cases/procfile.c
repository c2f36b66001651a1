/*
 * procfile: files under /proc that a process keeps open (desktop programs keep
 * /proc/self/status and the like) come back on the same paths, which name the same processes
 * after restore, at the same positions.
 *
 *   60  /proc/self/status (/proc/PID/status), 20 bytes read
 *   61  /proc/self/stat, O_CLOEXEC
 *   62  /proc/CHILD/status: the child's, held by the parent
 *   63  /proc/self/fd, O_DIRECTORY
 *   64  /proc/PID/task/PID/comm: the main thread's own file
 *   65  /proc/meminfo: not a process's
 */
#include "case.h"

#include <dirent.h>
#include <limits.h>

#define NPFDS 6

struct pfd {
	int fd;
	char link[PATH_MAX];
	int fl, fdfl;
	off_t pos;
};

static struct pfd pfds[NPFDS] = { { 60 }, { 61 }, { 62 }, { 63 }, { 64 }, { 65 } };

static void open_at(const char *path, int flags, int want)
{
	int fd = open(path, flags);

	if (fd < 0)
		case_die("open %s: %m", path);
	if (fd != want && (dup3(fd, want, flags & O_CLOEXEC) != want || close(fd)))
		case_die("dup3 %d: %m", want);
}

static void setup(pid_t child)
{
	char path[64], buf[20];

	open_at("/proc/self/status", O_RDONLY, 60);
	if (read(60, buf, sizeof(buf)) != sizeof(buf))
		case_die("read /proc/self/status: %m");
	open_at("/proc/self/stat", O_RDONLY | O_CLOEXEC, 61);
	snprintf(path, sizeof(path), "/proc/%d/status", child);
	open_at(path, O_RDONLY, 62);
	open_at("/proc/self/fd", O_RDONLY | O_DIRECTORY, 63);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", getpid(), getpid());
	open_at(path, O_RDONLY, 64);
	open_at("/proc/meminfo", O_RDONLY, 65);
}

static void record(struct pfd *p)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
	n = readlink(proc, p->link, sizeof(p->link) - 1);
	if (n < 0)
		case_die("readlink: %m");
	p->link[n] = '\0';
	p->fl = fcntl(p->fd, F_GETFL);
	p->fdfl = fcntl(p->fd, F_GETFD);
	p->pos = lseek(p->fd, 0, SEEK_CUR);
}

static void check_one(const struct pfd *p)
{
	char proc[64], link[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p->fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0) {
		case_fail("fd %d: not open: %m", p->fd);
		return;
	}
	link[n] = '\0';
	case_check(!strcmp(link, p->link), "fd %d: path %s, want %s", p->fd, link, p->link);
	case_check(fcntl(p->fd, F_GETFL) == p->fl, "fd %d: flags %#o, want %#o", p->fd,
		   fcntl(p->fd, F_GETFL), p->fl);
	case_check(fcntl(p->fd, F_GETFD) == p->fdfl, "fd %d: fd flags differ", p->fd);
	if (p->fd != 63)	/* a directory's position is a cookie */
		case_check(lseek(p->fd, 0, SEEK_CUR) == p->pos, "fd %d: position %lld, want %lld",
			   p->fd, (long long)lseek(p->fd, 0, SEEK_CUR), (long long)p->pos);
}

/* fd (a status file) must describe process pid. */
static void check_status_of(int fd, pid_t pid)
{
	char buf[4096], want[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0) {
		case_fail("fd %d: pread: %m", fd);
		return;
	}
	buf[n] = '\0';
	snprintf(want, sizeof(want), "\nPid:\t%d\n", pid);
	case_check(strstr(buf, want) != NULL, "fd %d: not the status of pid %d", fd, pid);
}

static void check_contents(pid_t child)
{
	char buf[64];
	struct dirent *de;
	DIR *d;
	bool seen = false;

	/*
	 * Reading on works from byte 20. What it returns is the rest of the text the kernel
	 * generated when the position was set (a seq_file keeps it): in the original, at its first
	 * read; after restore, when crest set the position, so it is not compared.
	 */
	case_check(read(60, buf, 10) == 10 && lseek(60, 0, SEEK_CUR) == 30,
		   "fd 60: reading on from byte 20 fails");
	lseek(60, 20, SEEK_SET);
	check_status_of(60, getpid());
	check_status_of(62, child);
	case_check(pread(64, buf, sizeof(buf), 0) == 9 && !memcmp(buf, "procfile\n", 9),
		   "fd 64: comm is not procfile");
	case_check(pread(65, buf, 9, 0) == 9 && !memcmp(buf, "MemTotal:", 9), "fd 65: not meminfo");
	d = fdopendir(dup(63));
	while (d && (de = readdir(d)))
		seen |= !strcmp(de->d_name, "62");
	case_check(seen, "fd 63: fd 62 is not in the directory it reads");
	if (d)
		closedir(d);
}

static void sabotage(pid_t child)
{
	if (case_sabotage("pos"))
		lseek(60, 0, SEEK_SET);
	if (case_sabotage("pid"))	/* what opening the child's file in the child would give */
		open_at("/proc/self/status", O_RDONLY, 62);
	if (case_sabotage("stat"))
		open_at("/proc/self/statm", O_RDONLY | O_CLOEXEC, 61);
}

int main(int argc, char **argv)
{
	pid_t child;

	case_init(argc, argv);
	child = case_fork();
	if (child == 0) {
		case_wait();
		case_child_exit();
	}
	setup(child);
	for (int i = 0; i < NPFDS; i++)
		record(&pfds[i]);
	case_ready();
	case_wait();

	sabotage(child);
	for (int i = 0; i < NPFDS; i++)
		check_one(&pfds[i]);
	check_contents(child);
	case_check_child(child, "child");
	case_finish();
}
