/*
 * posix_shm: POSIX shared memory (shm_open(3): files of the tmpfs at /dev/shm), mapped
 * MAP_SHARED by a parent and the child it forks afterwards.
 *
 *   /crest-case-posix-shm  3 pages, patterned, kept open at fd 40 and mapped: an ordinary file,
 *                          whose contents stay in /dev/shm.
 *   /crest-case-posix-shm-gone  2 pages, patterned, kept open at fd 41 and mapped, then
 *                          shm_unlink'ed: only the open descriptor keeps it, and crest must
 *                          save its contents (a ghost file) and map the same file again.
 *
 * After SIGTERM the child writes a marker into both mappings; the parent must see both
 * through its own mappings and through the descriptors: one file each, shared by all.
 */
#include "case.h"

#include <sys/mman.h>

#define NAME_A "/crest-case-posix-shm"
#define NAME_B "/crest-case-posix-shm-gone"
#define SIZE_A (3 * 4096)
#define SIZE_B (2 * 4096)
#define MARK_OFF 4100
#define MARK "child was here"

static char *map_a, *map_b;

static char pattern(size_t off, int seed)
{
	return (char)((off * 11 + seed * 17) % 253 + 1);
}

static char *make(const char *name, size_t size, int seed, int want_fd)
{
	int fd = shm_open(name, O_CREAT | O_TRUNC | O_RDWR, 0600);
	char *p;

	if (fd < 0 || ftruncate(fd, size))
		case_die("shm_open %s: %m", name);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		case_die("mmap %s: %m", name);
	for (size_t i = 0; i < size; i++)
		p[i] = pattern(i, seed);
	case_move_fd(fd, want_fd, 0);
	return p;
}

static void check_one(const char *what, const char *p, int fd, size_t size, int seed)
{
	char buf[sizeof(MARK)] = "";
	size_t bad = size;

	for (size_t i = 0; i < size && bad == size; i++)
		if ((i < MARK_OFF || i >= MARK_OFF + strlen(MARK)) && p[i] != pattern(i, seed))
			bad = i;
	case_check(bad == size, "%s: contents differ at %zu", what, bad);
	case_check(!memcmp(p + MARK_OFF, MARK, strlen(MARK)),
		   "%s: the child's write is not seen through the parent's mapping", what);
	case_check(pread(fd, buf, strlen(MARK), MARK_OFF) == (ssize_t)strlen(MARK) &&
		   !memcmp(buf, MARK, strlen(MARK)),
		   "%s: the child's write is not seen through fd %d: not the mapped file", what, fd);
}

int main(int argc, char **argv)
{
	struct stat st;
	pid_t pid;

	case_init(argc, argv);
	map_a = make(NAME_A, SIZE_A, 1, 40);
	map_b = make(NAME_B, SIZE_B, 2, 41);
	if (shm_unlink(NAME_B))
		case_die("shm_unlink: %m");
	pid = case_fork();
	if (pid == 0) {
		case_wait();
		memcpy(map_a + MARK_OFF, MARK, strlen(MARK));
		memcpy(map_b + MARK_OFF, MARK, strlen(MARK));
		case_child_exit();
	}
	case_ready_wait();
	if (case_sabotage("posix_shm_unshared")) {	/* a copy in place of the shared mapping */
		char *copy = mmap(NULL, SIZE_B, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (copy != MAP_FAILED)
			map_b = memcpy(copy, map_b, SIZE_B);
	}
	case_check_child(pid, "child");
	check_one(NAME_A, map_a, 40, SIZE_A, 1);
	check_one(NAME_B " (unlinked)", map_b, 41, SIZE_B, 2);
	case_check(!fstat(41, &st) && st.st_nlink == 0 && st.st_size == SIZE_B,
		   "fd 41: links %lu size %lld, want an unlinked file of %d bytes",
		   (unsigned long)st.st_nlink, (long long)st.st_size, SIZE_B);
	if (!case_nfail)
		case_say("PASS");
	return case_nfail ? 1 : 0;
}
