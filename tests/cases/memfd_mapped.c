/*
 * memfd_mapped: a memfd both open as a descriptor and mapped is one object after restore, in
 * every process: a write through the fd shows in the mappings and a write through a mapping
 * shows through the fd; its name, size, contents and seals come back.
 *
 *   40  "crest mapped": 3 pages + 100 bytes, F_SEAL_SHRINK|F_SEAL_GROW, mapped read-write
 *       MAP_SHARED by the parent and (inherited) by the child, which holds fd 40 too
 *   41  "future": 1 page, mapped read-write, then F_SEAL_FUTURE_WRITE: the mapping stays
 *       writable, write(2) and new writable mappings are refused
 *   42  "sealed": 1 page, F_SEAL_WRITE, then mapped read-only MAP_SHARED (Linux 6.7 allows it
 *       through a read-write descriptor: the mapping can never become writable)
 *   43  fd 40's memfd reopened O_RDONLY and mapped read-only: it sees the writes, and cannot
 *       be made writable (mprotect: EACCES)
 *
 * After SIGTERM the parent writes through fd 40 and checks its mapping; the child checks its
 * mapping, writes through it, and the parent then reads the child's byte through fd 40.
 */
#include "case.h"

#include <sys/mman.h>

#define M_SIZE (3 * 4096 + 100)
#define F_SIZE 4096
#define PARENT_OFF 100
#define CHILD_OFF 5000

static uint8_t *map40, *map41, *map42, *map43;
static int seals40, seals41, seals42;

static void make_at(const char *name, int want, size_t size, int seed)
{
	int fd = memfd_create(name, MFD_ALLOW_SEALING);

	if (fd < 0)
		case_die("memfd_create %s: %m", name);
	case_move_fd(fd, want, 0);
	if (ftruncate(want, size))
		case_die("fd %d: ftruncate: %m", want);
	case_fill(want, 0, size, seed);
}

static uint8_t *map_at(int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		case_die("fd %d: mmap: %m", fd);
	return p;
}

static void setup(void)
{
	make_at("crest mapped", 40, M_SIZE, 1);
	map40 = map_at(40, M_SIZE);
	if (fcntl(40, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		case_die("fd 40: seals: %m");
	make_at("future", 41, F_SIZE, 2);
	map41 = map_at(41, F_SIZE);
	if (fcntl(41, F_ADD_SEALS, F_SEAL_FUTURE_WRITE))
		case_die("fd 41: F_SEAL_FUTURE_WRITE: %m");
	make_at("sealed", 42, F_SIZE, 3);
	if (fcntl(42, F_ADD_SEALS, F_SEAL_WRITE))
		case_die("fd 42: F_SEAL_WRITE: %m");
	map42 = mmap(NULL, F_SIZE, PROT_READ, MAP_SHARED, 42, 0);
	if (map42 == MAP_FAILED)	/* before 6.7: a write-sealed memfd is not mapped shared */
		map42 = NULL;
	case_open_at("/proc/self/fd/40", O_RDONLY, 0, 43);
	map43 = mmap(NULL, M_SIZE, PROT_READ, MAP_SHARED, 43, 0);
	if (map43 == MAP_FAILED)
		case_die("fd 43: mmap: %m");
	seals40 = fcntl(40, F_GET_SEALS);
	seals41 = fcntl(41, F_GET_SEALS);
	seals42 = fcntl(42, F_GET_SEALS);
}

/* The mapping of fd holds the pattern seed (but at skip, if not negative). */
static void check_map(const uint8_t *map, size_t size, int seed, const char *who)
{
	for (size_t i = 0; i < size; i++) {
		if (i == PARENT_OFF || i == CHILD_OFF)
			continue;
		if (map[i] != case_pattern(i, seed)) {
			case_fail("%s: mapping byte %zu is %#x, want %#x", who, i, map[i],
				  case_pattern(i, seed));
			return;
		}
	}
}

static void check_fd(int fd, const char *name, int seals)
{
	char link[128], want[128];

	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	if (case_fd_link(fd, link, sizeof(link)) < 0 || strcmp(link, want))
		case_fail("fd %d: link '%s', want '%s'", fd, link, want);
	case_check(fcntl(fd, F_GET_SEALS) == seals, "fd %d: seals %#x, want %#x", fd,
		   fcntl(fd, F_GET_SEALS), seals);
}

static __attribute__((noreturn)) void child(void)
{
	case_wait();
	check_fd(40, "crest mapped", seals40);
	check_map(map40, M_SIZE, 1, "child fd 40");
	/* the parent's write through fd 40, done before it signalled us */
	case_check(map40[PARENT_OFF] == 0xA5, "child: the parent's write through fd 40 is not in the child's mapping");
	map40[CHILD_OFF] = 0x5A;
	case_child_exit();
}

static void check_future(void)
{
	uint8_t x = 7;
	void *p;

	check_fd(41, "future", seals41);
	check_map(map41, F_SIZE, 2, "fd 41");
	case_check(pwrite(41, &x, 1, 0) < 0 && errno == EPERM, "fd 41: write(2) allowed despite F_SEAL_FUTURE_WRITE");
	p = mmap(NULL, F_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 41, 0);
	case_check(p == MAP_FAILED, "fd 41: a new writable mapping allowed despite F_SEAL_FUTURE_WRITE");
	if (p != MAP_FAILED)
		munmap(p, F_SIZE);
	map41[9] = 0x33;	/* the old mapping stays writable, and is the memfd */
	case_check(pread(41, &x, 1, 9) == 1 && x == 0x33, "fd 41: a write through its mapping is not seen through the fd");
}

static void check_read_only(void)
{
	uint8_t x = 7;

	check_fd(42, "sealed", seals42);
	case_check(pwrite(42, &x, 1, 0) < 0 && errno == EPERM, "fd 42: write(2) allowed despite F_SEAL_WRITE");
	if (map42) {
		check_map(map42, F_SIZE, 3, "fd 42");
		case_check(mprotect(map42, F_SIZE, PROT_READ | PROT_WRITE) && errno == EACCES,
			   "fd 42: its read-only mapping of a write-sealed memfd can be made writable");
	}
	check_map(map43, M_SIZE, 1, "fd 43");
	case_check(map43[PARENT_OFF] == 0xA5, "fd 43: a write through fd 40 is not in the read-only mapping");
	case_check(mprotect(map43, M_SIZE, PROT_READ | PROT_WRITE) && errno == EACCES,
		   "fd 43: a mapping through a read-only description can be made writable");
}

static void sabotage(void)
{
	if (case_sabotage("split")) {	/* what a mapping restored as an object of its own gives */
		munmap(map40, M_SIZE);
		make_at("crest mapped", 42, M_SIZE, 1);
		map40 = map_at(42, M_SIZE);
		close(42);
	}
	if (case_sabotage("seals"))
		fcntl(40, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
	if (case_sabotage("contents"))
		map41[200] ^= 1;
}

int main(int argc, char **argv)
{
	uint8_t got = 0, mark = 0xA5;
	pid_t pid;

	case_init(argc, argv);
	setup();
	pid = case_spawn(child);
	case_ready_wait();

	sabotage();
	check_fd(40, "crest mapped", seals40);
	check_map(map40, M_SIZE, 1, "fd 40");
	if (pwrite(40, &mark, 1, PARENT_OFF) != 1)
		case_fail("fd 40: pwrite: %m");
	case_check(map40[PARENT_OFF] == mark, "fd 40: a write through the fd is not in the mapping");
	case_check_child(pid, "child sharing fd 40 and its mapping");
	case_check(pread(40, &got, 1, CHILD_OFF) == 1 && got == 0x5A,
		   "fd 40: the child's write through its mapping is not seen through the fd");
	case_check(map40[CHILD_OFF] == 0x5A, "fd 40: the child's write is not in the parent's mapping");
	check_future();
	check_read_only();
	case_finish();
}
