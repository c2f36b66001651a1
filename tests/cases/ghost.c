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

#include <sys/stat.h>

#define G1_SIZE 5000
#define G4_SIZE 300000
#define G4_DATA 200000

struct gfd {
	struct case_fd f;
	struct stat st;
};

static struct gfd gfds[] = { { { 20 } }, { { 21 } }, { { 22 } }, { { 23 } }, { { 24 } }, { { 25 } },
			     { { 26 } } };
#define NGFDS (sizeof(gfds) / sizeof(gfds[0]))

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

	case_open_out_at("g1", O_RDWR | O_CREAT | O_TRUNC, 0600, 20);
	case_fill(20, 0, G1_SIZE, 1);
	case_open_out_at("g1", O_RDONLY | O_NOATIME, 0, 21);
	lseek(20, 1234, SEEK_SET);
	lseek(21, 77, SEEK_SET);
	if (dup2(20, 22) != 22)
		case_die("dup2: %m");
	case_open_out_at("g2", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600, 23);
	case_fill(23, 0, 100, 2);
	if (fchmod(23, 0640))
		case_die("fchmod: %m");
	case_open_out_at("g3", O_RDWR | O_CREAT | O_TRUNC, 0600, 24);
	case_open_out_at("g4", O_RDWR | O_CREAT | O_TRUNC, 0600, 25);
	if (ftruncate(25, G4_SIZE))
		case_die("ftruncate: %m");
	case_fill(25, G4_DATA, 100, 4);
	case_open_out_at("g4", O_RDONLY, 0, 25);
	lseek(25, G4_DATA + 10, SEEK_SET);
	case_open_out_at("hl.b", O_RDWR | O_CREAT | O_TRUNC, 0600, 26);
	case_fill(26, 0, 64, 5);
	case_path(a, sizeof(a), "hl.a");
	case_path(b, sizeof(b), "hl.b");
	unlink(a);
	if (link(b, a))
		case_die("link: %m");
	case_open_out_at("hl.a", O_RDWR, 0, 26);
	lseek(26, 5, SEEK_SET);
	unlink_out("g1");
	unlink_out("g2");
	unlink_out("g3");
	unlink_out("g4");
	unlink_out("hl.a");
}

static void record(struct gfd *g)
{
	case_fd_record(&g->f);
	if (fstat(g->f.fd, &g->st))
		case_die("fstat: %m");
}

/* Path, flags, position and what fstat says; times only before anything is written. */
static void check_one(const struct gfd *g, bool times)
{
	int fd = g->f.fd;
	struct stat st;

	if (!case_fd_check(&g->f, CASE_FD_FDFL | CASE_FD_POS) || !case_fstat_check(fd, &g->st, &st))
		return;
	case_check(st.st_nlink == g->st.st_nlink, "fd %d: %lu links, want %lu", fd,
		   (unsigned long)st.st_nlink, (unsigned long)g->st.st_nlink);
	/* fd 26 is a live file: the original's own checks write it after a dump -R */
	case_check(!times || fd == 26 || (st.st_mtim.tv_sec == g->st.st_mtim.tv_sec &&
				       st.st_mtim.tv_nsec == g->st.st_mtim.tv_nsec),
		   "fd %d: modification time differs", fd);
}

static void check_contents(void)
{
	int fd;

	case_check_bytes(21, 0, G1_SIZE, 1);
	case_check_bytes(25, 0, 4096, -1);
	case_check_bytes(25, G4_DATA, 100, 4);
	case_check_bytes(25, G4_SIZE - 100, 100, -1);
	case_check_bytes(26, 0, 64, 5);
	fd = open("/proc/self/fd/23", O_RDONLY);	/* write-only: read it anew */
	if (fd < 0)
		case_fail("fd 23: cannot reopen: %m");
	else
		case_check_bytes(fd, 0, 100, 2);
	if (fd >= 0)
		close(fd);
}

/* 20 and 21 are one inode, 20 and 22 one description, 26 the inode of OUTFILE.hl.b. */
static void check_sharing(void)
{
	char b[PATH_MAX];
	struct stat s20, s21, sb;
	uint8_t x = 0xAA, old = case_pattern(10, 1), got = 0;

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
	old = case_pattern(3, 5);
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
		case_fill(20, 100, 10, 9);
	if (case_sabotage("pos"))
		lseek(21, 0, SEEK_SET);
	if (case_sabotage("undeleted"))	/* a file that was not deleted: what reg would give */
		case_open_out_at("g3", O_RDWR | O_CREAT | O_TRUNC, 0600, 24);
	if (case_sabotage("split")) {
		/* what reopening each description of a ghost separately would give */
		case_open_out_at("g1.split", O_RDWR | O_CREAT | O_TRUNC, 0600, 21);
		case_fill(21, 0, G1_SIZE, 1);
		lseek(21, 77, SEEK_SET);
	}
	if (case_sabotage("hardlink")) {
		case_open_out_at("hl.copy", O_RDWR | O_CREAT | O_TRUNC, 0600, 26);
		case_fill(26, 0, 64, 5);
	}
	if (case_sabotage("mode"))
		fchmod(23, 0600);
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	setup();
	for (size_t i = 0; i < NGFDS; i++)
		record(&gfds[i]);
	pid = case_spawn(child);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NGFDS; i++)
		check_one(&gfds[i], true);
	check_contents();
	check_sharing();
	/* the child's 3 bytes are put back */
	case_fill(20, case_check_child_write(pid, 20, 3, "child sharing fd 20"), 3, 1);
	case_finish();
}
