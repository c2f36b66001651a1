/*
 * memory: every kind of private and shared memory comes back with its contents, its place and
 * its protection, and the restore leaves nothing of its own in the address space.
 *
 * Set up before "ready", checked after SIGTERM (in this order, so that reading a region cannot
 * hide a fault in the one before):
 *   untouched  64 anonymous pages never touched: still not resident (mincore), then zeros
 *   maps       /proc/self/maps (range, perms, offset, path) identical: no extra mapping
 *   proc       /proc/self/exe, cmdline, environ and auxv byte-identical
 *   clocks     CLOCK_MONOTONIC/REALTIME through the vDSO agree with the syscalls, monotonic
 *   heap       small and large malloc blocks, an sbrk area and the brk itself; .data, .bss, stack
 *   holes      16 pages with pages 5 and 10 unmapped: the holes stay holes
 *   prot       r, rw, rx (with code, called), rwx, -w and none, read back after mprotect
 *   growsdown  a MAP_GROWSDOWN area keeps its contents and its "gd" flag
 *   zeros      pages explicitly overwritten with zeros, between pages with data
 *   shmem      MAP_SHARED|MAP_ANONYMOUS shared with a child: writes cross in both directions
 *   private    a MAP_PRIVATE file mapping: modified (COW) pages keep their data, the others
 *              still show the file, and the file itself is unchanged
 *   shared     a MAP_SHARED file mapping: a write through it after restore reaches the file
 * Files are created next to OUTFILE and left with the contents they had at "ready", so that a
 * second restore of the same image (--leave-running mode) finds them as the first did.
 */
#include "case.h"

#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>

#define NSMALL 200
#define LARGE_SIZE (1024 * 1024 + 123)
#define BRK_SIZE (64 * 1024)

static long ps;
extern char **environ;

/* ---- the regions ---- */

static uint8_t *small[NSMALL], *large, *brk_area, *brk_end;
static uint8_t *holes, *untouched, *growsdown, *zeros, *shmem, *priv, *shared, *priv_zeroed;
static uint64_t data_arr[512] = { 1, 2, 3, 5, 8, 13, 21, 34 };
static uint8_t bss_arr[3 * 4096 + 17];
static int64_t mono0, real0;

static const struct prot_region {
	const char *name;
	int prot;
	bool code;
} prots[] = {
	{ "r", PROT_READ, false }, { "rw", PROT_READ | PROT_WRITE, false },
	{ "rx", PROT_READ | PROT_EXEC, true }, { "rwx", PROT_READ | PROT_WRITE | PROT_EXEC, true },
	{ "w", PROT_WRITE, false }, { "none", PROT_NONE, false },
};
#define NPROT (sizeof(prots) / sizeof(prots[0]))
static uint8_t *prot_area[NPROT];
/* mov eax, 42; ret */
static const uint8_t code42[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 };

/* Deterministic contents: a region filled with seed s differs from one filled with any other. */
static void fill(void *p, size_t len, uint64_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((seed * 0x9e3779b97f4a7c15ull + i * 131 + (i >> 8) * 7) >> 3);
}

/* Returns the offset of the first byte that differs from fill(seed), or -1. */
static long diff(const void *p, size_t len, uint64_t seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != (uint8_t)((seed * 0x9e3779b97f4a7c15ull + i * 131 + (i >> 8) * 7) >> 3))
			return (long)i;
	return -1;
}

#define check_fill(p, len, seed, ...) do { \
	long _off = diff((p), (len), (seed)); \
	if (_off >= 0) { \
		case_fail(__VA_ARGS__); \
		case_say("  (first difference at byte %ld of %zu)", _off, (size_t)(len)); \
	} \
} while (0)

static void *map(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		case_die("mmap %zu bytes: %m", len);
	return p;
}

static void *map_file(const char *suffix, int npages, uint64_t seed0, int flags)
{
	char path[4096];
	uint8_t *page = alloca(ps);
	int fd;
	void *p;

	case_path(path, sizeof(path), suffix);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		case_die("%s: %m", path);
	for (int i = 0; i < npages; i++) {
		fill(page, ps, seed0 + i);
		if (write(fd, page, ps) != ps)
			case_die("%s: write: %m", path);
	}
	p = mmap(NULL, npages * ps, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		case_die("mmap %s: %m", path);
	close(fd);
	return p;
}

/* pread of one page of a file next to OUTFILE, compared with fill(seed). */
static void check_file_page(const char *suffix, int page, uint64_t seed, const char *what)
{
	char path[4096];
	uint8_t *buf = alloca(ps);
	int fd;

	case_path(path, sizeof(path), suffix);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, buf, ps, page * ps) != ps) {
		case_fail("%s: cannot read page %d of %s: %m", what, page, path);
	} else {
		check_fill(buf, ps, seed, "%s: page %d of the file has the wrong contents", what, page);
	}
	if (fd >= 0)
		close(fd);
}

/* ---- snapshots of /proc: taken into static buffers, since malloc could move the heap ---- */

struct snap {
	char maps[64 * 1024];
	char exe[4096];
	char cmdline[8192];
	char environ[64 * 1024];
	char auxv[4096];
	ssize_t cmdline_len, environ_len, auxv_len;
};

static struct snap before, after;

/* /proc/self/maps without the device and inode columns (a shmem inode may change). */
static void read_maps(char *out, size_t size)
{
	static char raw[64 * 1024];
	char *line, *save, path[4096];
	unsigned long start, end, off;
	char perms[8];
	size_t len = 0;

	if (case_read_file("/proc/self/maps", raw, sizeof(raw)) < 0)
		case_die("/proc/self/maps: %m");
	out[0] = '\0';
	for (line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		path[0] = '\0';
		if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %4095[^\n]", &start, &end, perms, &off,
			   path) < 4)
			continue;
		len += snprintf(out + len, size - len, "%lx-%lx %s %lx %s\n", start, end, perms,
				off, path);
		if (len >= size)
			case_die("/proc/self/maps too long");
	}
}

static void take_snap(struct snap *s)
{
	ssize_t n;

	read_maps(s->maps, sizeof(s->maps));
	n = readlink("/proc/self/exe", s->exe, sizeof(s->exe) - 1);
	s->exe[n > 0 ? n : 0] = '\0';
	s->cmdline_len = case_read_file("/proc/self/cmdline", s->cmdline, sizeof(s->cmdline));
	s->environ_len = case_read_file("/proc/self/environ", s->environ, sizeof(s->environ));
	s->auxv_len = case_read_file("/proc/self/auxv", s->auxv, sizeof(s->auxv));
}

/* Lines of a that are not in b, each reported with prefix. */
static int lines_missing(const char *a, const char *b, const char *fmt)
{
	char line[4200];
	int n = 0;

	for (const char *p = a; *p; ) {
		size_t l = strcspn(p, "\n");
		const char *q = b;
		bool found = false;

		snprintf(line, sizeof(line), "%.*s\n", (int)l, p);
		while ((q = strstr(q, line))) {
			if (q == b || q[-1] == '\n') {
				found = true;
				break;
			}
			q++;
		}
		if (!found && n++ < 10)
			case_fail(fmt, (int)l, p);
		p += l + (p[l] == '\n');
	}
	return n;
}

static void compare_snaps(void)
{
	lines_missing(before.maps, after.maps, "maps: mapping lost or changed: %.*s");
	lines_missing(after.maps, before.maps, "maps: mapping added or changed: %.*s");
	case_check(!strcmp(before.exe, after.exe), "/proc/self/exe is %s, want %s", after.exe,
		   before.exe);
	case_check(before.cmdline_len == after.cmdline_len &&
		   !memcmp(before.cmdline, after.cmdline, before.cmdline_len),
		   "/proc/self/cmdline differs (%zd bytes, want %zd)", after.cmdline_len,
		   before.cmdline_len);
	case_check(before.environ_len == after.environ_len &&
		   !memcmp(before.environ, after.environ, before.environ_len),
		   "/proc/self/environ differs (%zd bytes, want %zd)", after.environ_len,
		   before.environ_len);
	case_check(before.auxv_len == after.auxv_len &&
		   !memcmp(before.auxv, after.auxv, before.auxv_len),
		   "/proc/self/auxv differs (%zd bytes, want %zd)", after.auxv_len, before.auxv_len);
}

/* Damage for the self-test: the kind of change a restore that misses these would make. */
static void sabotage_proc(void)
{
	if (case_sabotage("extra_mapping"))
		map(ps, PROT_READ, 0);
	if (case_sabotage("prot"))
		mprotect(prot_area[0], 2 * ps, PROT_READ | PROT_WRITE);
	if (case_sabotage("cmdline"))
		program_invocation_name[0] ^= 1;	/* argv[0]: /proc/self/cmdline reads it */
	if (case_sabotage("environ"))
		for (char **e = environ; *e; e++)
			if (strncmp(*e, "CASE_SABOTAGE=", 14)) {
				(*e)[strlen(*e) - 1] ^= 1;
				break;
			}
	if (case_sabotage("auxv")) {
		static unsigned long aux[512];

		memcpy(aux, before.auxv, before.auxv_len);
		aux[1] ^= 1;
		if (prctl(PR_SET_MM, PR_SET_MM_AUXV, (unsigned long)aux, before.auxv_len, 0))
			before.auxv[0] ^= 1;	/* not allowed here: damage the other side instead */
	}
}

static void setup_heap(void)
{
	for (int i = 0; i < NSMALL; i++) {
		small[i] = malloc(16 + i * 8);
		if (!small[i])
			case_die("malloc: %m");
		fill(small[i], 16 + i * 8, 1000 + i);
	}
	large = malloc(LARGE_SIZE);
	if (!large)
		case_die("malloc: %m");
	fill(large, LARGE_SIZE, 2);
	/* sbrk after malloc: no malloc may follow, or it could move the brk. */
	brk_area = sbrk(BRK_SIZE);
	if (brk_area == (void *)-1)
		case_die("sbrk: %m");
	fill(brk_area, BRK_SIZE, 3);
	brk_end = sbrk(0);
	for (size_t i = 8; i < 512; i++)
		data_arr[i] = i * 0x1234567;
	fill(bss_arr, sizeof(bss_arr), 4);
}

static void check_heap(uint8_t *stack_arr, size_t stack_len)
{
	if (case_sabotage("brk"))
		sbrk(ps);
	if (case_sabotage("bss"))
		bss_arr[sizeof(bss_arr) - 1] ^= 1;
	if (case_sabotage("data"))
		data_arr[300] ^= 1;
	if (case_sabotage("stack"))
		stack_arr[stack_len / 2] ^= 1;
	if (case_sabotage("heap_small"))
		small[77][3] ^= 1;
	if (case_sabotage("heap_large"))
		large[LARGE_SIZE - 1] ^= 1;
	for (int i = 0; i < NSMALL; i++)
		check_fill(small[i], 16 + i * 8, 1000 + i, "heap: small block %d differs", i);
	check_fill(large, LARGE_SIZE, 2, "heap: large block differs");
	check_fill(brk_area, BRK_SIZE, 3, "brk: the sbrk area differs");
	case_check(sbrk(0) == brk_end, "brk is %p, want %p", sbrk(0), (void *)brk_end);
	for (size_t i = 0; i < 512; i++)
		if (data_arr[i] != (i < 8 ? data_arr[i] : i * 0x1234567)) {
			case_fail(".data: word %zu differs", i);
			break;
		}
	case_check(data_arr[7] == 34, ".data: initialised word 7 is %llu",
		   (unsigned long long)data_arr[7]);
	check_fill(bss_arr, sizeof(bss_arr), 4, ".bss differs");
	check_fill(stack_arr, stack_len, 5, "stack: main's local array differs");
}

static void setup_maps(void)
{
	holes = map(16 * ps, PROT_READ | PROT_WRITE, 0);
	fill(holes, 16 * ps, 6);
	munmap(holes + 5 * ps, ps);
	munmap(holes + 10 * ps, ps);

	for (size_t i = 0; i < NPROT; i++) {
		prot_area[i] = map(2 * ps, PROT_READ | PROT_WRITE, 0);
		fill(prot_area[i], 2 * ps, 10 + i);
		if (prots[i].code)
			memcpy(prot_area[i], code42, sizeof(code42));
		if (mprotect(prot_area[i], 2 * ps, prots[i].prot))
			case_die("mprotect %s: %m", prots[i].name);
	}

	growsdown = map(4 * ps, PROT_READ | PROT_WRITE, MAP_GROWSDOWN);
	fill(growsdown, 4 * ps, 20);
	untouched = map(64 * ps, PROT_READ | PROT_WRITE, 0);
	zeros = map(8 * ps, PROT_READ | PROT_WRITE, 0);
	fill(zeros, 8 * ps, 21);
	memset(zeros + 2 * ps, 0, 4 * ps);

	priv = map_file("private", 4, 80, MAP_PRIVATE);
	/* A private file page written full of zeros: only the image can say it is zero now. */
	priv_zeroed = map_file("private-zeroed", 2, 70, MAP_PRIVATE);
	memset(priv_zeroed + ps, 0, ps);
	fill(priv + 1 * ps, ps, 91);
	fill(priv + 3 * ps, ps, 93);
	(void)*(volatile uint8_t *)priv;	/* page 0 read (file page mapped), page 2 never */
	shared = map_file("shared", 4, 100, MAP_SHARED);
	fill(shared, ps, 110);			/* page 0 now 110 in the file too */
	if (msync(shared, ps, MS_SYNC))
		case_die("msync: %m");
}

static void check_untouched(void)
{
	unsigned char vec[64];
	int resident = 0;

	if (case_sabotage("untouched"))
		untouched[5 * ps] = 1;
	if (mincore(untouched, 64 * ps, vec)) {
		case_fail("untouched: mincore: %m");
		return;
	}
	for (int i = 0; i < 64; i++)
		resident += vec[i] & 1;
	case_check(resident == 0, "untouched: %d of its 64 never-touched pages are resident now",
		   resident);
	for (long i = 0; i < 64 * ps; i++)
		if (untouched[i]) {
			case_fail("untouched: byte %ld is %#x, want 0", i, untouched[i]);
			break;
		}
}

static void check_clocks(void)
{
	struct timespec sys;
	struct timeval tv;
	int64_t prev, now, sysns;

	if (case_sabotage("clock"))
		mono0 += (int64_t)1000 * 1000000000;
	prev = case_now_ns(CLOCK_MONOTONIC);
	case_check(prev >= mono0, "CLOCK_MONOTONIC went back by %lld ns",
		   (long long)(mono0 - prev));
	for (int i = 0; i < 1000; i++) {
		now = case_now_ns(CLOCK_MONOTONIC);
		if (now < prev) {
			case_fail("CLOCK_MONOTONIC is not monotonic: %lld then %lld", (long long)prev,
				  (long long)now);
			break;
		}
		prev = now;
	}
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &sys);
	sysns = (int64_t)sys.tv_sec * 1000000000 + sys.tv_nsec;
	now = case_now_ns(CLOCK_MONOTONIC);
	case_check(sysns <= now && now - sysns < 1000000000,
		   "vDSO CLOCK_MONOTONIC %lld disagrees with the syscall's %lld", (long long)now,
		   (long long)sysns);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &sys);
	sysns = (int64_t)sys.tv_sec * 1000000000 + sys.tv_nsec;
	now = case_now_ns(CLOCK_REALTIME);
	case_check(now >= real0 && llabs(now - sysns) < 1000000000,
		   "vDSO CLOCK_REALTIME %lld disagrees with the syscall's %lld", (long long)now,
		   (long long)sysns);
	gettimeofday(&tv, NULL);
	case_check(llabs((int64_t)tv.tv_sec - sys.tv_sec) <= 1, "gettimeofday says %lld, want %lld",
		   (long long)tv.tv_sec, (long long)sys.tv_sec);
}

static void check_holes(void)
{
	static uint8_t copy[16 * 4096];

	if (case_sabotage("hole"))
		mmap(holes + 5 * ps, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	fill(copy, 16 * ps, 6);
	for (int i = 0; i < 16; i++) {
		/* msync fails with ENOMEM on an address that is not mapped */
		bool mapped = msync(holes + i * ps, ps, MS_ASYNC) == 0;

		if (i == 5 || i == 10)
			case_check(!mapped, "holes: page %d was unmapped and is mapped now", i);
		else if (!mapped)
			case_fail("holes: page %d is not mapped", i);
		else
			case_check(!memcmp(holes + i * ps, copy + i * ps, ps), "holes: page %d differs",
				   i);
	}
}

static void check_prot(void)
{
	static uint8_t want[2 * 4096];

	if (case_sabotage("code")) {
		mprotect(prot_area[2], 2 * ps, PROT_READ | PROT_WRITE);
		prot_area[2][1] = 7;
		mprotect(prot_area[2], 2 * ps, PROT_READ | PROT_EXEC);
	}
	for (size_t i = 0; i < NPROT; i++) {
		if (prots[i].code) {
			int r = ((int (*)(void))(void *)prot_area[i])();

			case_check(r == 42, "prot %s: the code in it returned %d, want 42",
				   prots[i].name, r);
		}
		if (mprotect(prot_area[i], 2 * ps, PROT_READ)) {
			case_fail("prot %s: mprotect: %m", prots[i].name);
			continue;
		}
		fill(want, 2 * ps, 10 + i);
		if (prots[i].code)
			memcpy(want, code42, sizeof(code42));
		case_check(!memcmp(prot_area[i], want, 2 * ps), "prot %s: contents differ",
			   prots[i].name);
	}
}

/* VmFlags of the smaps entry that starts at addr contains flag. */
static bool smaps_flag(void *addr, const char *flag)
{
	static char buf[512 * 1024];
	unsigned long start, end, cur = 0;
	char *line, *save, perms[8];

	if (case_read_file("/proc/self/smaps", buf, sizeof(buf)) < 0)
		return false;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* a mapping's first line is "start-end perms ...", the others "Name: value" */
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3)
			cur = start;
		else if (!strncmp(line, "VmFlags:", 8) && cur == (unsigned long)addr) {
			char want[8];

			snprintf(want, sizeof(want), " %s", flag);
			return strstr(line + 8, want) != NULL;
		}
	}
	return false;
}

static void check_growsdown(void)
{
	if (case_sabotage("growsdown"))
		growsdown[ps + 9] ^= 1;
	check_fill(growsdown, 4 * ps, 20, "growsdown: contents differ");
	case_check(smaps_flag(growsdown, "gd"), "growsdown: VmFlags of %p lack \"gd\"",
		   (void *)growsdown);
}

static void check_zeros(void)
{
	static uint8_t copy[8 * 4096];

	if (case_sabotage("zeros"))
		zeros[3 * ps + 100] = 1;
	fill(copy, 8 * ps, 21);
	memset(copy + 2 * ps, 0, 4 * ps);
	for (int i = 0; i < 8; i++)
		case_check(!memcmp(zeros + i * ps, copy + i * ps, ps), "zeros: page %d differs (%s)",
			   i, i >= 2 && i < 6 ? "written with zeros" : "data");
}

/* The child's half of the shared anonymous mapping test. */
static __attribute__((noreturn)) void shmem_child(void)
{
	case_wait();
	check_fill(shmem, ps, 30, "shmem (child): page 0 differs");
	check_fill(shmem + 3 * ps, ps, 33, "shmem (child): page 3 differs");
	case_check(!strcmp((char *)shmem + ps, "written by the parent after restore"),
		   "shmem (child): the parent's write is not visible");
	strcpy((char *)shmem + 2 * ps, "written by the child after restore");
	case_child_exit();
}

static pid_t setup_shmem(void)
{
	shmem = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shmem == MAP_FAILED)
		case_die("mmap shared: %m");
	for (int i = 0; i < 4; i++)
		fill(shmem + i * ps, ps, 30 + i);
	return case_spawn(shmem_child);
}

static void check_shmem(pid_t child)
{
	if (case_sabotage("shmem")) {
		/* what a restore that makes the mapping private in each process would give */
		static uint8_t copy[4 * 4096];

		memcpy(copy, shmem, 4 * ps);
		mmap(shmem, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		     -1, 0);
		memcpy(shmem, copy, 4 * ps);
	}
	check_fill(shmem, ps, 30, "shmem: page 0 differs");
	check_fill(shmem + 3 * ps, ps, 33, "shmem: page 3 differs");
	strcpy((char *)shmem + ps, "written by the parent after restore");
	case_check_child(child, "shmem child");
	case_check(!strcmp((char *)shmem + 2 * ps, "written by the child after restore"),
		   "shmem: the child's write is not visible");
}

static void check_private(void)
{
	if (case_sabotage("private_cow"))
		madvise(priv + ps, ps, MADV_DONTNEED);	/* drops the COW copy: file data shows */
	check_fill(priv, ps, 80, "private: page 0 (read, from the file) differs");
	check_fill(priv + ps, ps, 91, "private: page 1 (written, COW) differs");
	check_fill(priv + 2 * ps, ps, 82, "private: page 2 (untouched, from the file) differs");
	check_fill(priv + 3 * ps, ps, 93, "private: page 3 (written, COW) differs");
	check_file_page("private", 1, 81, "private");
	check_file_page("private", 3, 83, "private");
	if (case_sabotage("private_zeroed"))
		madvise(priv_zeroed + ps, ps, MADV_DONTNEED);	/* the file's bytes show again */
	check_fill(priv_zeroed, ps, 70, "private-zeroed: page 0 (from the file) differs");
	for (long i = 0; i < ps; i++)
		if (priv_zeroed[ps + i]) {
			case_fail("private-zeroed: page 1, written with zeros, has %#x at %ld",
				  priv_zeroed[ps + i], i);
			break;
		}
}

static void check_shared(void)
{
	if (case_sabotage("shared_file")) {
		/* what a restore that maps the file privately would give */
		mmap(shared, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS,
		     -1, 0);
		fill(shared, ps, 110);
		fill(shared + 2 * ps, ps, 102);
	}
	check_fill(shared, ps, 110, "shared: page 0 (written before dump) differs");
	check_fill(shared + 2 * ps, ps, 102, "shared: page 2 differs");
	fill(shared + ps, ps, 111);
	msync(shared, 4 * ps, MS_SYNC);
	check_file_page("shared", 0, 110, "shared");
	check_file_page("shared", 1, 111, "shared: write through the mapping after restore");
	/* back to the contents at "ready", for a second restore of the same image */
	fill(shared + ps, ps, 101);
	msync(shared, 4 * ps, MS_SYNC);
}

int main(int argc, char **argv)
{
	uint8_t stack_arr[3000];
	pid_t child;

	case_init(argc, argv);
	ps = sysconf(_SC_PAGESIZE);
	if (ps > 4096)
		case_die("page size %ld: this case assumes 4096", ps);
	fill(stack_arr, sizeof(stack_arr), 5);
	setup_maps();
	child = setup_shmem();
	setup_heap();
	mono0 = case_now_ns(CLOCK_MONOTONIC);
	real0 = case_now_ns(CLOCK_REALTIME);
	take_snap(&before);
	case_ready_wait();

	check_untouched();
	sabotage_proc();
	take_snap(&after);
	compare_snaps();
	check_clocks();
	check_heap(stack_arr, sizeof(stack_arr));
	check_holes();
	check_prot();
	check_growsdown();
	check_zeros();
	check_shmem(child);
	check_private();
	check_shared();
	case_finish();
}
