/*
 * ghost: files deleted while open come back deleted, with their contents, and descriptions
 * that shared an inode still share one; a deleted name of a file that keeps another name (a
 * hard link) comes back as that same file.
 *
 *   20  OUTFILE.g1 O_RDWR at 1234, 5000 bytes, then unlinked; shared with the child
 *   21  OUTFILE.g1 O_RDONLY|O_NOATIME at 77: another description of the same inode
 *   22  dup of 20
 *   23  OUTFILE.g2 O_WRONLY|O_APPEND, 100 bytes, mode 0640, unlinked
 *   24  OUTFILE.g3 O_RDWR, empty, unlinked
 *   25  OUTFILE.g4 O_RDONLY at 200010: 300000 bytes, 100 of data at 200000, unlinked
 *   26  OUTFILE.hl.a O_RDWR at 5, a hard link of OUTFILE.hl.b; hl.a unlinked, hl.b kept
 *
 * After SIGTERM the child writes 3 bytes through fd 20 and the parent must see its offset move.
 * Writes made to check sharing are put back before exiting.
 */
#include "case.h"

#include <limits.h>
#include <sys/stat.h>

#define G1_SIZE 5000
#define G4_SIZE 300000
#define G4_DATA 200000

struct gfd {
	int fd;
	char link[PATH_MAX];
	int fl, fdfl;
	off_t pos;
	struct stat st;
};

static struct gfd gfds[] = { { 20 }, { 21 }, { 22 }, { 23 }, { 24 }, { 25 }, { 26 } };
#define NGFDS (sizeof(gfds) / sizeof(gfds[0]))

static uint8_t pattern(off_t i, int seed)
{
	return (uint8_t)(i * 13 + seed * 7 + (i >> 8));
}

static void fill(int fd, off_t off, size_t len, int seed)
{
	uint8_t buf[G1_SIZE];

	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(off + i, seed);
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		case_die("pwrite: %m");
}

/* Opens OUTFILE.suffix at fd number want. */
static void open_at(const char *suffix, int flags, mode_t mode, int want)
{
	char path[PATH_MAX];
	int fd;

	case_path(path, sizeof(path), suffix);
	fd = open(path, flags, mode);
	if (fd < 0)
		case_die("open %s: %m", path);
	if (fd != want && (dup2(fd, want) != want || close(fd)))
		case_die("dup2 %d: %m", want);
}

static void unlink_out(const char *suffix)
{
	char path[PATH_MAX];

	case_path(path, sizeof(path), suffix);
	if (unlink(path))
		case_die("unlink %s: %m", path);
}

static void setup(void)
{
	char a[PATH_MAX], b[PATH_MAX];

	open_at("g1", O_RDWR | O_CREAT | O_TRUNC, 0600, 20);
	fill(20, 0, G1_SIZE, 1);
	open_at("g1", O_RDONLY | O_NOATIME, 0, 21);
	lseek(20, 1234, SEEK_SET);
	lseek(21, 77, SEEK_SET);
	if (dup2(20, 22) != 22)
		case_die("dup2: %m");
	open_at("g2", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600, 23);
	fill(23, 0, 100, 2);
	if (fchmod(23, 0640))
		case_die("fchmod: %m");
	open_at("g3", O_RDWR | O_CREAT | O_TRUNC, 0600, 24);
	open_at("g4", O_RDWR | O_CREAT | O_TRUNC, 0600, 25);
	if (ftruncate(25, G4_SIZE))
		case_die("ftruncate: %m");
	fill(25, G4_DATA, 100, 4);
	open_at("g4", O_RDONLY, 0, 25);
	lseek(25, G4_DATA + 10, SEEK_SET);
	open_at("hl.b", O_RDWR | O_CREAT | O_TRUNC, 0600, 26);
	fill(26, 0, 64, 5);
	case_path(a, sizeof(a), "hl.a");
	case_path(b, sizeof(b), "hl.b");
	unlink(a);
	if (link(b, a))
		case_die("link: %m");
	open_at("hl.a", O_RDWR, 0, 26);
	lseek(26, 5, SEEK_SET);
	unlink_out("g1");
	unlink_out("g2");
	unlink_out("g3");
	unlink_out("g4");
	unlink_out("hl.a");
}

static void record(struct gfd *g)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", g->fd);
	n = readlink(proc, g->link, sizeof(g->link) - 1);
	if (n < 0)
		case_die("readlink %s: %m", proc);
	g->link[n] = '\0';
	g->fl = fcntl(g->fd, F_GETFL);
	g->fdfl = fcntl(g->fd, F_GETFD);
	g->pos = lseek(g->fd, 0, SEEK_CUR);
	if (fstat(g->fd, &g->st))
		case_die("fstat: %m");
}

/* Path, flags, position and what fstat says; times only before anything is written. */
static void check_one(const struct gfd *g, bool times)
{
	char proc[64], link[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", g->fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0 || fstat(g->fd, &st)) {
		case_fail("fd %d: not open: %m", g->fd);
		return;
	}
	link[n] = '\0';
	case_check(!strcmp(link, g->link), "fd %d: path %s, want %s", g->fd, link, g->link);
	case_check(fcntl(g->fd, F_GETFL) == g->fl, "fd %d: flags %#o, want %#o", g->fd,
		   fcntl(g->fd, F_GETFL), g->fl);
	case_check(fcntl(g->fd, F_GETFD) == g->fdfl, "fd %d: fd flags differ", g->fd);
	case_check(lseek(g->fd, 0, SEEK_CUR) == g->pos, "fd %d: position %lld, want %lld", g->fd,
		   (long long)lseek(g->fd, 0, SEEK_CUR), (long long)g->pos);
	case_check(st.st_nlink == g->st.st_nlink, "fd %d: %lu links, want %lu", g->fd,
		   (unsigned long)st.st_nlink, (unsigned long)g->st.st_nlink);
	case_check(st.st_size == g->st.st_size, "fd %d: size %lld, want %lld", g->fd,
		   (long long)st.st_size, (long long)g->st.st_size);
	case_check(st.st_mode == g->st.st_mode, "fd %d: mode %o, want %o", g->fd, st.st_mode,
		   g->st.st_mode);
	/* fd 26 is a live file: the original's own checks write it after a dump -R */
	case_check(!times || g->fd == 26 || (st.st_mtim.tv_sec == g->st.st_mtim.tv_sec &&
				   st.st_mtim.tv_nsec == g->st.st_mtim.tv_nsec),
		   "fd %d: modification time differs", g->fd);
}

/* len bytes at off of fd must be pattern(seed), or zeros for seed < 0. */
static void check_bytes(int fd, off_t off, size_t len, int seed)
{
	uint8_t buf[G1_SIZE];
	ssize_t n = pread(fd, buf, len, off);

	if (n != (ssize_t)len) {
		case_fail("fd %d: pread of %zu at %lld returned %zd: %m", fd, len, (long long)off, n);
		return;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (seed < 0 ? 0 : pattern(off + i, seed))) {
			case_fail("fd %d: byte %lld differs", fd, (long long)(off + i));
			return;
		}
}

static void check_contents(void)
{
	char proc[64];
	int fd;

	check_bytes(21, 0, G1_SIZE, 1);
	check_bytes(25, 0, 4096, -1);
	check_bytes(25, G4_DATA, 100, 4);
	check_bytes(25, G4_SIZE - 100, 100, -1);
	check_bytes(26, 0, 64, 5);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", 23);	/* write-only: read it anew */
	fd = open(proc, O_RDONLY);
	if (fd < 0)
		case_fail("fd 23: cannot reopen: %m");
	else
		check_bytes(fd, 0, 100, 2);
	if (fd >= 0)
		close(fd);
}

/* 20 and 21 are one inode, 20 and 22 one description, 26 the inode of OUTFILE.hl.b. */
static void check_sharing(void)
{
	char b[PATH_MAX];
	struct stat s20, s21, sb;
	uint8_t x = 0xAA, old = pattern(10, 1), got = 0;

	fstat(20, &s20);
	fstat(21, &s21);
	case_check(s20.st_ino == s21.st_ino, "fds 20 and 21 no longer share an inode");
	if (pwrite(20, &x, 1, 10) != 1 || pread(21, &got, 1, 10) != 1 || got != x)
		case_fail("a write through fd 20 is not seen through fd 21");
	if (pwrite(20, &old, 1, 10) != 1)
		case_fail("fd 20: pwrite back: %m");
	lseek(22, 5, SEEK_CUR);
	case_check(lseek(20, 0, SEEK_CUR) == 1234 + 5, "lseek on fd 22 did not move fd 20");
	lseek(20, 1234, SEEK_SET);

	case_path(b, sizeof(b), "hl.b");
	if (stat(b, &sb) || fstat(20, &s20) || fstat(26, &s21) || sb.st_ino != s21.st_ino)
		case_fail("fd 26 is not the file %s any more", b);
	old = pattern(3, 5);
	if (pwrite(26, &x, 1, 3) != 1)
		case_fail("fd 26: pwrite: %m");
	got = 0;
	int fd = open(b, O_RDONLY);

	if (fd < 0 || pread(fd, &got, 1, 3) != 1 || got != x)
		case_fail("a write through fd 26 is not seen through %s", b);
	if (fd >= 0)
		close(fd);
	if (pwrite(26, &old, 1, 3) != 1)
		case_fail("fd 26: pwrite back: %m");
}

static __attribute__((noreturn)) void child(void)
{
	case_wait();
	check_one(&gfds[0], false);	/* the parent has written through it by now */
	if (write(20, "abc", 3) != 3)
		case_fail("child: fd 20: write: %m");
	case_child_exit();
}

static void sabotage(void)
{
	if (case_sabotage("contents"))
		fill(20, 100, 10, 9);
	if (case_sabotage("pos"))
		lseek(21, 0, SEEK_SET);
	if (case_sabotage("undeleted"))	/* a file that was not deleted: what reg would give */
		open_at("g3", O_RDWR | O_CREAT | O_TRUNC, 0600, 24);
	if (case_sabotage("split")) {
		/* what reopening each description of a ghost separately would give */
		open_at("g1.split", O_RDWR | O_CREAT | O_TRUNC, 0600, 21);
		fill(21, 0, G1_SIZE, 1);
		lseek(21, 77, SEEK_SET);
	}
	if (case_sabotage("hardlink")) {
		open_at("hl.copy", O_RDWR | O_CREAT | O_TRUNC, 0600, 26);
		fill(26, 0, 64, 5);
	}
	if (case_sabotage("mode"))
		fchmod(23, 0600);
}

int main(int argc, char **argv)
{
	pid_t pid;
	off_t at;

	case_init(argc, argv);
	setup();
	for (size_t i = 0; i < NGFDS; i++)
		record(&gfds[i]);
	pid = case_fork();
	if (pid == 0)
		child();
	case_ready();
	case_wait();

	sabotage();
	for (size_t i = 0; i < NGFDS; i++)
		check_one(&gfds[i], true);
	check_contents();
	check_sharing();
	at = lseek(20, 0, SEEK_CUR);
	case_check_child(pid, "child sharing fd 20");
	case_check(lseek(20, 0, SEEK_CUR) == at + 3,
		   "fd 20: the child's write moved the shared offset to %lld, want %lld",
		   (long long)lseek(20, 0, SEEK_CUR), (long long)at + 3);
	fill(20, at, 3, 1);
	case_finish();
}
