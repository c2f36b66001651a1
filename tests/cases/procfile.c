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

#define NPFDS 6

static struct case_fd pfds[NPFDS] = { { 60 }, { 61 }, { 62 }, { 63 }, { 64 }, { 65 } };

static void setup(pid_t child)
{
	char path[64], buf[20];

	case_open_at("/proc/self/status", O_RDONLY, 0, 60);
	if (read(60, buf, sizeof(buf)) != sizeof(buf))
		case_die("read /proc/self/status: %m");
	case_open_at("/proc/self/stat", O_RDONLY | O_CLOEXEC, 0, 61);
	snprintf(path, sizeof(path), "/proc/%d/status", child);
	case_open_at(path, O_RDONLY, 0, 62);
	case_open_at("/proc/self/fd", O_RDONLY | O_DIRECTORY, 0, 63);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", getpid(), getpid());
	case_open_at(path, O_RDONLY, 0, 64);
	case_open_at("/proc/meminfo", O_RDONLY, 0, 65);
}

static void check_one(const struct case_fd *p)
{
	/* a directory's position is a cookie */
	case_fd_check(p, CASE_FD_FDFL | (p->fd != 63 ? CASE_FD_POS : 0));
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
		case_open_at("/proc/self/status", O_RDONLY, 0, 62);
	if (case_sabotage("stat"))
		case_open_at("/proc/self/statm", O_RDONLY | O_CLOEXEC, 0, 61);
}

int main(int argc, char **argv)
{
	pid_t child;

	case_init(argc, argv);
	child = case_spawn(case_wait);	/* a child that only waits for SIGTERM */
	setup(child);
	for (int i = 0; i < NPFDS; i++)
		case_fd_record(&pfds[i]);
	case_ready_wait();

	sabotage(child);
	for (int i = 0; i < NPFDS; i++)
		check_one(&pfds[i]);
	check_contents(child);
	case_check_child(child, "child");
	case_finish();
}
