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

#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define M1_DATA 20000
#define M1_HOLE (2 * 1024 * 1024)
#define M1_SIZE (3 * 1024 * 1024)

struct mfd {
	int fd;
	char link[PATH_MAX];
	int fl, fdfl, seals;
	off_t pos;
	struct stat st;
};

static struct mfd mfds[] = { { 40 }, { 41 }, { 42 }, { 43 }, { 44 } };
#define NMFDS (sizeof(mfds) / sizeof(mfds[0]))

static uint8_t pattern(off_t i, int seed)
{
	return (uint8_t)(i * 11 + seed * 3 + (i >> 10));
}

static void fill(int fd, off_t off, size_t len, int seed)
{
	uint8_t buf[M1_DATA];

	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(off + i, seed);
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		case_die("pwrite fd %d: %m", fd);
}

static void make_at(const char *name, unsigned int flags, int want)
{
	int fd = memfd_create(name, flags);

	if (fd < 0)
		case_die("memfd_create %s: %m", name);
	if (fd != want && (dup3(fd, want, flags & MFD_CLOEXEC ? O_CLOEXEC : 0) != want || close(fd)))
		case_die("dup3 %d: %m", want);
}

static void setup(void)
{
	char proc[64];
	int fd;

	make_at("crest memfd one", MFD_ALLOW_SEALING, 40);
	fill(40, 0, M1_DATA, 1);
	if (ftruncate(40, M1_SIZE))
		case_die("ftruncate: %m");
	fill(40, M1_HOLE, 100, 2);
	if (fchmod(40, 0640) || fcntl(40, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		case_die("fd 40: mode and seals: %m");
	lseek(40, 4321, SEEK_SET);
	make_at("two", 0, 41);
	fill(41, 0, 1000, 3);
	fcntl(41, F_SETFL, O_NONBLOCK);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", 41);
	fd = open(proc, O_RDONLY);
	if (fd < 0 || dup2(fd, 42) != 42 || close(fd))
		case_die("reopen of fd 41: %m");
	lseek(42, 10, SEEK_SET);
	make_at("sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC, 43);
	fill(43, 0, 4096, 4);
	if (fcntl(43, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		case_die("fd 43: seals: %m");
	make_at("tricky (deleted)", 0, 44);
}

static void record(struct mfd *m)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
	n = readlink(proc, m->link, sizeof(m->link) - 1);
	if (n < 0 || fstat(m->fd, &m->st))
		case_die("fd %d: %m", m->fd);
	m->link[n] = '\0';
	m->fl = fcntl(m->fd, F_GETFL);
	m->fdfl = fcntl(m->fd, F_GETFD);
	m->seals = fcntl(m->fd, F_GET_SEALS);
	m->pos = lseek(m->fd, 0, SEEK_CUR);
}

static void check_one(const struct mfd *m)
{
	char proc[64], link[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
	n = readlink(proc, link, sizeof(link) - 1);
	if (n < 0 || fstat(m->fd, &st)) {
		case_fail("fd %d: not open: %m", m->fd);
		return;
	}
	link[n] = '\0';
	case_check(!strcmp(link, m->link), "fd %d: path %s, want %s", m->fd, link, m->link);
	case_check(fcntl(m->fd, F_GETFL) == m->fl, "fd %d: flags %#o, want %#o", m->fd,
		   fcntl(m->fd, F_GETFL), m->fl);
	case_check(fcntl(m->fd, F_GETFD) == m->fdfl, "fd %d: fd flags differ", m->fd);
	case_check(fcntl(m->fd, F_GET_SEALS) == m->seals, "fd %d: seals %#x, want %#x", m->fd,
		   fcntl(m->fd, F_GET_SEALS), m->seals);
	case_check(lseek(m->fd, 0, SEEK_CUR) == m->pos, "fd %d: position %lld, want %lld", m->fd,
		   (long long)lseek(m->fd, 0, SEEK_CUR), (long long)m->pos);
	case_check(st.st_size == m->st.st_size, "fd %d: size %lld, want %lld", m->fd,
		   (long long)st.st_size, (long long)m->st.st_size);
	case_check(st.st_mode == m->st.st_mode, "fd %d: mode %o, want %o", m->fd, st.st_mode,
		   m->st.st_mode);
}

static void check_bytes(int fd, off_t off, size_t len, int seed)
{
	static uint8_t buf[M1_DATA];
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
	struct stat a, b;
	uint8_t x = 0x5A, got = 0, old = pattern(7, 3);

	check_bytes(40, 0, M1_DATA, 1);
	check_bytes(40, M1_DATA, 8192, -1);
	check_bytes(40, M1_HOLE, 100, 2);
	check_bytes(40, M1_SIZE - 1000, 1000, -1);
	check_bytes(42, 0, 1000, 3);
	check_bytes(43, 0, 4096, 4);
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
		fill(40, 5, 10, 9);
	if (case_sabotage("hole"))
		fill(40, M1_DATA + 100, 10, 9);
	if (case_sabotage("seals"))
		fcntl(40, F_ADD_SEALS, F_SEAL_WRITE);
	if (case_sabotage("split")) {	/* what recreating each description alone would give */
		make_at("two", 0, 42);
		fill(42, 0, 1000, 3);
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
	off_t at;

	case_init(argc, argv);
	setup();
	for (size_t i = 0; i < NMFDS; i++)
		record(&mfds[i]);
	pid = case_fork();
	if (pid == 0)
		child();
	case_ready();
	case_wait();

	sabotage();
	for (size_t i = 0; i < NMFDS; i++)
		check_one(&mfds[i]);
	check_contents();
	at = lseek(40, 0, SEEK_CUR);
	case_check_child(pid, "child sharing fd 40");
	case_check(lseek(40, 0, SEEK_CUR) == at + 3, "fd 40: the child's write moved the offset to %lld, want %lld",
		   (long long)lseek(40, 0, SEEK_CUR), (long long)at + 3);
	fill(40, at, 3, 1);
	case_finish();
}
