/*
 * flock: file locks come back held by the same owners: POSIX record locks by their process,
 * OFD and flock(2) locks by their open file description; and a regular file's O_ASYNC owner
 * and signal come back.
 *
 *   50  OUTFILE.l1 O_RDWR: the parent's POSIX WRITE lock on bytes 10-29, READ lock 100-EOF
 *   51  OUTFILE.l1 O_RDWR, another description: OFD WRITE lock on bytes 50-59
 *   52  OUTFILE.l2 O_RDONLY: flock LOCK_EX; the description is shared with the child
 *   53  OUTFILE.l3 O_RDWR, opened before fork: the parent's POSIX READ lock on 20-29, and
 *       the child's POSIX WRITE lock on 0-9, taken through the same shared description
 *   54  OUTFILE.l4 O_RDONLY: flock LOCK_SH; 55 another description of it, LOCK_SH too
 *   56  OUTFILE.l1 opened O_RDONLY|O_ASYNC, owner the process group, signal SIGUSR2
 *
 * Checked: each fd's "lock:" lines in /proc/self/fdinfo are as before, and the locks really
 * exclude others (F_OFD_GETLK and flock from fresh descriptions, F_GETLK across processes).
 */
#include "case.h"

#include <sys/file.h>

#define NFDS 7
#define LOCKS_MAX 1024

static const int fds[NFDS] = { 50, 51, 52, 53, 54, 55, 56 };
static char locks_before[NFDS][LOCKS_MAX];
static pid_t child_pid;

static int lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl);
}

/* The "lock:" lines of fd's fdinfo without their running numbers, in order. */
static void lock_lines(int fd, char *out, size_t size)
{
	char buf[4096], *p = buf;

	out[0] = '\0';
	if (case_fdinfo(fd, buf, sizeof(buf)) < 0) {
		snprintf(out, size, "(/proc/self/fdinfo/%d: %s)", fd, strerror(errno));
		return;
	}
	while ((p = strstr(p, "lock:\t"))) {
		char *colon = strchr(p, ':'), *nl = strchr(p, '\n');

		colon = colon ? strchr(colon + 1, ':') : NULL;
		if (!colon || !nl)
			break;
		snprintf(out + strlen(out), size - strlen(out), "%.*s;", (int)(nl - colon - 1), colon + 1);
		p = nl;
	}
}

static void setup_parent(void)
{
	struct f_owner_ex o = { F_OWNER_PGRP, getpgrp() };

	case_open_out_at("l1", O_RDWR | O_CREAT | O_TRUNC, 0600, 50);
	if (ftruncate(50, 4096))
		case_die("ftruncate: %m");
	case_open_out_at("l1", O_RDWR, 0600, 51);
	case_open_out_at("l2", O_RDONLY | O_CREAT, 0600, 52);
	case_open_out_at("l3", O_RDWR | O_CREAT | O_TRUNC, 0600, 53);
	case_open_out_at("l4", O_RDONLY | O_CREAT, 0600, 54);
	case_open_out_at("l4", O_RDONLY, 0600, 55);
	/* F_SETFL cannot set O_ASYNC: a regular file has no ->fasync */
	case_open_out_at("l1", O_RDONLY | O_ASYNC, 0600, 56);
	if (lock(50, F_SETLK, F_WRLCK, 10, 20) || lock(50, F_SETLK, F_RDLCK, 100, 0) ||
	    lock(51, F_OFD_SETLK, F_WRLCK, 50, 10) || flock(52, LOCK_EX | LOCK_NB) ||
	    lock(53, F_SETLK, F_RDLCK, 20, 10) || flock(54, LOCK_SH | LOCK_NB) ||
	    flock(55, LOCK_SH | LOCK_NB))
		case_die("taking the locks: %m");
	if (fcntl(56, F_SETOWN_EX, &o) || fcntl(56, F_SETSIG, SIGUSR2))
		case_die("O_ASYNC on fd 56: %m");
}

/*
 * A conflicting lock seen from a fresh description of OUTFILE.l1 (F_OFD_GETLK): its pid, or 0
 * for none. The description stays open: closing any fd of l1 would drop our POSIX locks on it.
 */
static int ofd_conflict(short type, off_t start)
{
	static int fd = -1;
	char path[PATH_MAX];
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = 1 };

	case_path(path, sizeof(path), "l1");
	if (fd < 0)
		fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fcntl(fd, F_OFD_GETLK, &fl)) {
		case_fail("F_OFD_GETLK on %s: %m", path);
		return 0;
	}
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

/* flock from a fresh description: true if it had to wait. */
static bool flock_blocked(const char *suffix, int how)
{
	char path[PATH_MAX];
	bool blocked;
	int fd;

	case_path(path, sizeof(path), suffix);
	fd = open(path, O_RDONLY);
	blocked = fd >= 0 && flock(fd, how | LOCK_NB) && errno == EWOULDBLOCK;
	if (fd >= 0)
		close(fd);
	return blocked;
}

/* The POSIX lock of another process on fd's file at byte start (F_GETLK): its pid, or 0. */
static int posix_conflict(int fd, off_t start)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = 1 };

	if (fcntl(fd, F_GETLK, &fl))
		case_fail("F_GETLK on fd %d: %m", fd);
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

static void check_lock_lines(const int *which, size_t n)
{
	char now[LOCKS_MAX];

	for (size_t i = 0; i < n; i++) {
		lock_lines(fds[which[i]], now, sizeof(now));
		case_check(!strcmp(now, locks_before[which[i]]), "fd %d: locks [%s], want [%s]",
			   fds[which[i]], now, locks_before[which[i]]);
	}
}

static void check_parent(void)
{
	static const int all[NFDS] = { 0, 1, 2, 3, 4, 5, 6 };
	struct f_owner_ex o = { 0 };

	check_lock_lines(all, NFDS);
	case_check(ofd_conflict(F_RDLCK, 15) == getpid(), "l1: no POSIX write lock on byte 15");
	case_check(ofd_conflict(F_WRLCK, 500) == getpid(), "l1: no POSIX read lock on byte 500");
	case_check(ofd_conflict(F_RDLCK, 55) == -1, "l1: no OFD write lock on byte 55");
	case_check(ofd_conflict(F_WRLCK, 40) == 0, "l1: byte 40 is locked");
	case_check(flock_blocked("l2", LOCK_SH), "l2: not flock()ed exclusively");
	case_check(flock_blocked("l4", LOCK_EX) && !flock_blocked("l4", LOCK_SH),
		   "l4: not flock()ed shared");
	case_check(posix_conflict(53, 5) == child_pid, "l3: byte 5 not locked by the child %d",
		   child_pid);
	fcntl(56, F_GETOWN_EX, &o);
	case_check(o.type == F_OWNER_PGRP && o.pid == getpgrp(), "fd 56: O_ASYNC owner %d:%d, want group %d",
		   o.type, o.pid, getpgrp());
	case_check(fcntl(56, F_GETSIG) == SIGUSR2, "fd 56: signal %d, want SIGUSR2", fcntl(56, F_GETSIG));
	case_check(fcntl(56, F_GETFL) & O_ASYNC, "fd 56: O_ASYNC is off");
}

static __attribute__((noreturn)) void child(void)
{
	static const int mine[] = { 3 };

	if (lock(53, F_SETLK, F_WRLCK, 0, 10))
		case_die("child: lock on l3: %m");
	lock_lines(53, locks_before[3], LOCKS_MAX);
	case_wait();
	if (case_sabotage("child_posix"))
		lock(53, F_SETLK, F_UNLCK, 0, 10);
	check_lock_lines(mine, 1);
	case_check(posix_conflict(53, 25) == getppid(), "child: l3: byte 25 not locked by the parent");
	case_child_exit();
}

static void sabotage(void)
{
	struct f_owner_ex none = { F_OWNER_PID, 0 };

	if (case_sabotage("posix"))
		lock(50, F_SETLK, F_UNLCK, 10, 20);
	if (case_sabotage("ofd"))
		lock(51, F_OFD_SETLK, F_UNLCK, 50, 10);
	if (case_sabotage("flock"))
		flock(52, LOCK_UN);
	if (case_sabotage("owner"))
		fcntl(56, F_SETOWN_EX, &none);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup_parent();
	child_pid = case_spawn(child);
	case_wait_until(posix_conflict(53, 5) == child_pid, 2000);
	for (int i = 0; i < NFDS; i++)
		lock_lines(fds[i], locks_before[i], LOCKS_MAX);
	case_ready_wait();

	sabotage();
	check_parent();
	case_check_child(child_pid, "child holding a lock on l3");
	case_finish();
}
