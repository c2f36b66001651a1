/*
 * memfd: memfds open as descriptors come back with their name, size, contents (holes
 * included), seals, mode, position and flags; descriptions that shared a memfd still share it.
 *
 *   40  "crest memfd one": 20000 bytes, then a hole, 100 bytes at 2 MiB, size 3 MiB, mode 0640,
 *       F_SEAL_SHRINK|F_SEAL_GROW, position 4321; shared with the child
 *   41  "two", created without MFD_ALLOW_SEALING, 1000 bytes, O_RDWR|O_NONBLOCK
 *   42  "two" again, O_RDONLY at 10, reopened through /proc/self/fd/41: another description
 *   43  "sealed": 4096 bytes, F_SEAL_WRITE|F_SEAL_SEAL, FD_CLOEXEC
 *   44  "tricky (deleted)": empty, a name that ends like the kernel's suffix
 *
 * After SIGTERM the child writes 3 bytes through 40 and the parent's offset must move.
 */
#include "case.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define M1_DATA 20000
#define M1_HOLE (2 * 1024 * 1024)
#define M1_SIZE (3 * 1024 * 1024)

struct mfd {
	struct case_fd f;
	int seals;
	struct stat st;
};

static struct mfd mfds[] = { { { 40 } }, { { 41 } }, { { 42 } }, { { 43 } }, { { 44 } } };
#define NMFDS (sizeof(mfds) / sizeof(mfds[0]))

static void make_at(const char *name, unsigned int flags, int want)
{
	int fd = memfd_create(name, flags);

	if (fd < 0)
		case_die("memfd_create %s: %m", name);
	case_move_fd(fd, want, flags & MFD_CLOEXEC ? O_CLOEXEC : 0);
}

static void setup(void)
{

	make_at("crest memfd one", MFD_ALLOW_SEALING, 40);
	case_fill(40, 0, M1_DATA, 1);
	if (ftruncate(40, M1_SIZE))
		case_die("ftruncate: %m");
	case_fill(40, M1_HOLE, 100, 2);
	if (fchmod(40, 0640) || fcntl(40, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		case_die("fd 40: mode and seals: %m");
	lseek(40, 4321, SEEK_SET);
	make_at("two", 0, 41);
	case_fill(41, 0, 1000, 3);
	fcntl(41, F_SETFL, O_NONBLOCK);
	case_open_at("/proc/self/fd/41", O_RDONLY, 0, 42);	/* another description */
	lseek(42, 10, SEEK_SET);
	make_at("sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC, 43);
	case_fill(43, 0, 4096, 4);
	if (fcntl(43, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		case_die("fd 43: seals: %m");
	make_at("tricky (deleted)", 0, 44);
}

static void record(struct mfd *m)
{
	case_fd_record(&m->f);
	if (fstat(m->f.fd, &m->st))
		case_die("fd %d: %m", m->f.fd);
	m->seals = fcntl(m->f.fd, F_GET_SEALS);
}

static void check_one(const struct mfd *m)
{
	int fd = m->f.fd;
	struct stat st;

	if (!case_fd_check(&m->f, CASE_FD_FDFL | CASE_FD_POS) || !case_fstat_check(fd, &m->st, &st))
		return;
	case_check(fcntl(fd, F_GET_SEALS) == m->seals, "fd %d: seals %#x, want %#x", fd,
		   fcntl(fd, F_GET_SEALS), m->seals);
}

static void check_contents(void)
{
	struct stat a, b;
	uint8_t x = 0x5A, got = 0, old = case_pattern(7, 3);

	case_check_bytes(40, 0, M1_DATA, 1);
	case_check_bytes(40, M1_DATA, 8192, -1);
	case_check_bytes(40, M1_HOLE, 100, 2);
	case_check_bytes(40, M1_SIZE - 1000, 1000, -1);
	case_check_bytes(42, 0, 1000, 3);
	case_check_bytes(43, 0, 4096, 4);
	case_check(pwrite(43, &x, 1, 0) < 0 && errno == EPERM, "fd 43: write allowed despite F_SEAL_WRITE");
	fstat(41, &a);
	fstat(42, &b);
	case_check(a.st_ino == b.st_ino, "fds 41 and 42 are no longer one memfd");
	if (pwrite(41, &x, 1, 7) != 1 || pread(42, &got, 1, 7) != 1 || got != x)
		case_fail("a write through fd 41 is not seen through fd 42");
	if (pwrite(41, &old, 1, 7) != 1)
		case_fail("fd 41: pwrite back: %m");
}

static __attribute__((noreturn)) void child(void)
{
	case_wait();
	check_one(&mfds[0]);
	if (write(40, "abc", 3) != 3)
		case_fail("child: fd 40: write: %m");
	case_child_exit();
}

static void sabotage(void)
{
	if (case_sabotage("contents"))
		case_fill(40, 5, 10, 9);
	if (case_sabotage("hole"))
		case_fill(40, M1_DATA + 100, 10, 9);
	if (case_sabotage("seals"))
		fcntl(40, F_ADD_SEALS, F_SEAL_WRITE);
	if (case_sabotage("split")) {	/* what recreating each description alone would give */
		make_at("two", 0, 42);
		case_fill(42, 0, 1000, 3);
		lseek(42, 10, SEEK_SET);
		fcntl(42, F_SETFL, 0);
	}
	if (case_sabotage("name"))
		make_at("tricky", 0, 44);
	if (case_sabotage("pos"))
		lseek(40, 0, SEEK_SET);
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	setup();
	for (size_t i = 0; i < NMFDS; i++)
		record(&mfds[i]);
	pid = case_spawn(child);
	case_ready_wait();

	sabotage();
	for (size_t i = 0; i < NMFDS; i++)
		check_one(&mfds[i]);
	check_contents();
	/* the child's 3 bytes are put back */
	case_fill(40, case_check_child_write(pid, 40, 3, "child sharing fd 40"), 3, 1);
	case_finish();
}
