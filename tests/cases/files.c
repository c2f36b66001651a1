/*
 * files: the descriptor table comes back with the same numbers, paths, positions, status
 * flags and close-on-exec flags, and descriptors that shared an open file description still
 * share it (within the process and with a child).
 *
 *   0        stdin: /dev/null from the driver
 *   1, 2     OUTFILE, O_WRONLY|O_APPEND, one description (the driver passes one fd twice)
 *   10       OUTFILE.ro  O_RDONLY at 1234, FD_CLOEXEC
 *   17       OUTFILE.rw  O_RDWR at 4097
 *   51       dup of 17: same description
 *   50       OUTFILE.rw  again, O_RDONLY|O_NONBLOCK|O_CLOEXEC at 100: a description of its own
 *   42       OUTFILE.app O_WRONLY|O_APPEND at the end of the file
 *   43       /dev/null   O_RDWR
 *   200      OUTFILE.shared O_RDWR at 333, opened before fork: shared with the child
 *   1000     OUTFILE.ro  O_RDONLY|O_NOATIME at 77: a sparse, larger fd table
 *
 * After SIGTERM the child writes 3 bytes through fd 200 and the parent must see its own offset
 * move by 3. Every file is put back as it was at "ready" before exiting, so that a second
 * restore of the same image finds the same sizes and contents.
 */
#include "case.h"

#include <dirent.h>
#include <linux/kcmp.h>

#define FILE_SIZE 8192

struct fdrec {
	struct case_fd f;	/* the fd number; what it was at setup */
	const char *suffix;	/* file next to OUTFILE, or NULL for a path given below */
	const char *path;
	int oflags;		/* open(2) flags */
	off_t seek;		/* -1: do not set (and do not check) the position */
};

static struct fdrec fds[] = {
	{ { 0 }, NULL, NULL, 0, -1 },
	{ { 1 }, NULL, NULL, 0, -1 },
	{ { 2 }, NULL, NULL, 0, -1 },
	{ { 10 }, "ro", NULL, O_RDONLY | O_CLOEXEC, 1234 },
	{ { 17 }, "rw", NULL, O_RDWR, 4097 },
	{ { 51 }, NULL, NULL, 0, -1 },		/* dup(17) */
	{ { 50 }, "rw", NULL, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 100 },
	{ { 42 }, "app", NULL, O_WRONLY | O_APPEND, -1 },
	{ { 43 }, NULL, "/dev/null", O_RDWR, -1 },
	{ { 200 }, "shared", NULL, O_RDWR, 333 },
	{ { 1000 }, "ro", NULL, O_RDONLY | O_NOATIME, 77 },
};
#define NFDS (sizeof(fds) / sizeof(fds[0]))

static off_t app_size;
static bool have_kcmp = true;

static void make_file(const char *suffix, int seed)
{
	char path[PATH_MAX];
	int fd;

	case_path(path, sizeof(path), suffix);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		case_die("%s: %m", path);
	case_fill(fd, 0, FILE_SIZE, seed);
	close(fd);
}

static void open_at(struct fdrec *r)
{
	int fd = r->f.fd;

	if (r->suffix)
		case_open_out_at(r->suffix, r->oflags, 0600, fd);
	else
		case_open_at(r->path, r->oflags, 0600, fd);
	if (r->seek >= 0 && lseek(fd, r->seek, SEEK_SET) != r->seek)
		case_die("fd %d: lseek: %m", fd);
}

/* The open fds, sorted (readdir order is not guaranteed). */
static int list_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		case_die("/proc/self/fd: %m");
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			out[n++] = atoi(e->d_name);
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static int open_before[64], nopen_before;

static void setup(void)
{
	char path[PATH_MAX];
	int fd;

	make_file("ro", 1);
	make_file("rw", 2);
	make_file("shared", 3);
	case_path(path, sizeof(path), "app");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "first line\n", 11) != 11)
		case_die("%s: %m", path);
	close(fd);
	app_size = 11;

	for (size_t i = 0; i < NFDS; i++)
		if (fds[i].suffix || fds[i].path)
			open_at(&fds[i]);
	if (dup2(17, 51) != 51)
		case_die("dup2: %m");
	if (write(42, "appended\n", 9) != 9)
		case_die("write to the append file: %m");
	app_size += 9;
	for (size_t i = 0; i < NFDS; i++)
		case_fd_record(&fds[i].f);
	nopen_before = list_fds(open_before, 64);
}

static void check_one(const struct fdrec *r)
{
	/* 0, 1, 2 and /dev/null: the position means nothing, OUTFILE grows with every line */
	bool pos = r->f.fd > 2 && r->f.fd != 43;

	case_fd_check(&r->f, CASE_FD_FDFL | (pos ? CASE_FD_POS : 0));
}

/* The fds open now are exactly those open at "ready": the restore left none of its own. */
static void check_table(void)
{
	int now[64], n = list_fds(now, 64);

	for (int i = 0; i < n; i++) {
		bool known = false;

		for (int j = 0; j < nopen_before; j++)
			known |= open_before[j] == now[i];
		if (!known) {
			char link[PATH_MAX];

			if (case_fd_link(now[i], link, sizeof(link)) <= 0)
				strcpy(link, "?");
			case_fail("fd %d (%s) is open but was not before", now[i], link);
		}
	}
	case_check(n >= nopen_before, "%d fds open, want %d", n, nopen_before);
}

/* 0: same open file description, 1: different, -1: the kernel cannot say. */
static int same_description(int a, int b)
{
	pid_t pid = getpid();
	long r;

	if (!have_kcmp)
		return -1;
	r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b);
	if (r < 0) {
		case_say("note: kcmp: %m: descriptions compared by offsets only");
		have_kcmp = false;
		return -1;
	}
	return r == 0 ? 0 : 1;
}

static void check_sharing(void)
{
	off_t p17 = lseek(17, 0, SEEK_CUR), p50 = lseek(50, 0, SEEK_CUR);

	case_check(same_description(1, 2) != 1, "fds 1 and 2 no longer share one description");
	case_check(same_description(17, 51) != 1, "fds 17 and 51 no longer share one description");
	case_check(same_description(17, 50) != 0, "fds 17 and 50 share one description now");
	lseek(51, 5, SEEK_CUR);
	case_check(lseek(17, 0, SEEK_CUR) == p17 + 5, "lseek on fd 51 did not move fd 17");
	case_check(lseek(50, 0, SEEK_CUR) == p50, "lseek on fd 51 moved fd 50");
	lseek(17, p17, SEEK_SET);
}

static void check_contents(void)
{
	uint8_t buf[100];
	off_t at = lseek(10, 0, SEEK_CUR);
	ssize_t n = read(10, buf, sizeof(buf)), bad;

	if (n != (ssize_t)sizeof(buf))
		case_fail("fd 10: read at %lld returned %zd: %m", (long long)at, n);
	bad = n > 0 ? case_pattern_diff(buf, at, n, 1) : -1;
	if (bad >= 0)
		case_fail("fd 10: byte %lld read back differs", (long long)(at + bad));
	lseek(10, at, SEEK_SET);

	/* O_APPEND still appends: the position ends at the new end of the file. */
	if (write(42, "more", 4) != 4)
		case_fail("fd 42: write: %m");
	case_check(lseek(42, 0, SEEK_CUR) == app_size + 4,
		   "fd 42: O_APPEND write ended at %lld, want %lld",
		   (long long)lseek(42, 0, SEEK_CUR), (long long)app_size + 4);
	if (ftruncate(42, app_size))
		case_fail("fd 42: ftruncate back: %m");
	lseek(42, app_size, SEEK_SET);
}

static __attribute__((noreturn)) void child(void)
{
	char path[PATH_MAX];

	case_wait();
	for (size_t i = 0; i < NFDS; i++)
		if (fds[i].f.fd == 200)
			check_one(&fds[i]);
	if (case_sabotage("shared_child")) {
		/* what a restore that opens the file again in each process would give */
		case_path(path, sizeof(path), "shared");
		int fd = open(path, O_RDWR);

		dup2(fd, 200);
		lseek(200, 333, SEEK_SET);
	}
	if (write(200, "abc", 3) != 3)
		case_fail("child: fd 200: write: %m");
	case_child_exit();
}

static void sabotage(void)
{
	char path[PATH_MAX];

	if (case_sabotage("pos"))
		lseek(10, 0, SEEK_SET);
	if (case_sabotage("flags"))
		fcntl(17, F_SETFL, O_NONBLOCK);
	if (case_sabotage("cloexec"))
		fcntl(10, F_SETFD, 0);
	if (case_sabotage("path"))
		dup2(open("/dev/zero", O_RDWR), 43);
	if (case_sabotage("dup")) {
		case_path(path, sizeof(path), "rw");
		dup2(open(path, O_RDWR), 51);
		lseek(51, 4097, SEEK_SET);
	}
	if (case_sabotage("stderr"))
		dup2(open(case_out, O_WRONLY | O_APPEND), 2);
	if (case_sabotage("extra_fd"))
		dup2(0, 77);
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	setup();
	pid = case_spawn(child);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NFDS; i++)
		check_one(&fds[i]);
	check_table();
	check_sharing();
	check_contents();

	case_check_child_write(pid, 200, 3, "child sharing fd 200");
	case_fill(200, 333, 3, 3);	/* the child's 3 bytes are put back */
	case_finish();
}
