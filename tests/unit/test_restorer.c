/*
 * Unit test of the restorer blob: a forked child plays crest's part (bootstrap region with the
 * blob, premapped areas, struct rst_args, blocked signals, the jump) and the parent plays the
 * controller, checking the result from outside through /proc once every thread has parked.
 * Then the failure path: bad plans must report the failing step in rst_ctl and exit, not hang.
 *
 * Needs root (clone3 set_tid, PR_SET_MM_MAP with an exe fd). Exit 0: pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <elf.h>

#include "restorer/restorer.h"

/* From src/arch/arch.h, which pulls in protobuf headers this test does not need. */
extern const char restorer_blob[];
extern const char restorer_blob_end[];

#define PAGE		4096UL
#define FINAL_A		0x200000000UL	/* 2 pages of pattern, ends PROT_READ */
#define FINAL_B		0x200100000UL	/* 1 page, ends read-write: strings, rseq */
#define NEW_VDSO	0x300000000UL
#define TASK_SIZE	0x7ffffffff000UL
#define NR_THREADS	3
#define PREMAP_PAGES	6		/* A: 0-1, B: 2, leftovers: 3-5 */
#define SA_RESTORER	0x04000000	/* kernel ABI; glibc does not export it */

/* Contents of B, at these offsets. */
#define B_ARGS		0x200
#define B_ENV		0x300
#define B_STACK		0x800
#define B_RSEQ(i)	(0x100 + (i) * 0x40)	/* struct rseq wants 32-byte alignment */
#define B_CLEAR_TID(i)	(0x80 + (i) * 8)

static const char args_text[] = "restored\0--flag";	/* two arguments, NUL-terminated */
static const char env_text[] = "CREST=1\0HOME=/nowhere";
static const uint64_t auxv[] = { AT_PAGESZ, PAGE, AT_HWCAP, 0x1234, AT_NULL, 0 };
static const char *const comms[NR_THREADS] = { "rst-main", "rst-worker-1", "rst-worker-2" };

/* How to break the plan, for the failure tests. */
enum fault {
	FAULT_NONE,
	FAULT_OVERLAP_KEEP,	/* vma B's final address is the bootstrap region */
	FAULT_BAD_PREMAP,	/* vma B's premap page is not mapped */
	FAULT_TID_TAKEN,	/* thread 1's tid is in use */
	FAULT_VDSO_TAKEN,	/* vma B sits in the vvar part of the vDSO block's place */
};

/* Decided by the parent before fork, so both sides know the addresses. */
struct plan {
	enum fault fault;
	pid_t tids[NR_THREADS];		/* [0] is filled by the child: its pid */
	uint64_t vdso_addr, vdso_text;
	const char *exe;
	struct rst_ctl *ctl;
};

/* What the child built; the parent reads it through the shared page after the ctl. */
struct layout {
	uint64_t boot, boot_len, premap, ctl;
};

static int failures;

#define CHECK(cond, ...)							\
	do {									\
		if (!(cond)) {							\
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
			fprintf(stderr, __VA_ARGS__);				\
			fputc('\n', stderr);					\
			failures++;						\
		}								\
	} while (0)

static void die(const char *what)
{
	perror(what);
	_exit(2);
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

/* Start addresses of this process' [vvar] and [vdso]. */
static int find_vdso(uint64_t *vvar, uint64_t *vdso)
{
	char line[512];
	unsigned long s, e;
	FILE *f = fopen("/proc/self/maps", "r");

	*vvar = *vdso = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (strstr(line, "[vvar]"))
			*vvar = s;
		else if (strstr(line, "[vdso]"))
			*vdso = s;
	}
	fclose(f);
	return *vvar && *vdso ? 0 : -1;
}

/* Two unused pids near pid_max, for the threads' set_tid. */
static int pick_tids(pid_t *tids, int n)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	int max = 32768, got = 0;
	pid_t p;

	if (f) {
		if (fscanf(f, "%d", &max) != 1)
			max = 32768;
		fclose(f);
	}
	for (p = max - 200; p < max && got < n; p++)
		if (kill(p, 0) < 0 && errno == ESRCH)
			tids[got++] = p;
	return got == n ? 0 : -1;
}

/* ---- child: crest's part ------------------------------------------------------------- */

static void fill_premap(uint64_t premap)
{
	char *a = (char *)premap, *b = a + 2 * PAGE;
	struct rseq *rs;
	size_t i;

	for (i = 0; i < 2 * PAGE; i++)
		a[i] = (char)(i * 7 + 3);
	memset(b, 0, PAGE);
	memcpy(b + B_ARGS, args_text, sizeof(args_text));
	memcpy(b + B_ENV, env_text, sizeof(env_text));
	for (i = 0; i < NR_THREADS; i++) {
		rs = (struct rseq *)(b + B_RSEQ(i));
		rs->cpu_id = RSEQ_CPU_ID_UNINITIALIZED;
	}
	memset(a + 3 * PAGE, 0x5a, (PREMAP_PAGES - 3) * PAGE);
}

static void fill_vmas(struct rst_args *args, struct rst_vma *vmas, const struct plan *p,
		      const struct layout *l)
{
	vmas[0] = (struct rst_vma){ .premap = l->premap, .start = FINAL_A, .len = 2 * PAGE,
				    .prot = PROT_READ };
	vmas[1] = (struct rst_vma){ .premap = l->premap + 2 * PAGE, .start = FINAL_B, .len = PAGE,
				    .prot = PROT_READ | PROT_WRITE };
	if (p->fault == FAULT_OVERLAP_KEEP)
		vmas[1].start = l->boot;
	if (p->fault == FAULT_BAD_PREMAP)
		vmas[1].premap = l->premap + 4 * PAGE;
	/* Neither page the restorer checks beforehand: the kernel then maps the block elsewhere. */
	if (p->fault == FAULT_VDSO_TAKEN)
		vmas[1].start = p->vdso_text - PAGE;
	args->vmas = (uintptr_t)vmas;
	args->nr_vmas = 2;
}

static void fill_threads(struct rst_args *args, struct rst_thread *t, const struct plan *p,
			 const struct layout *l)
{
	int i;

	for (i = 0; i < NR_THREADS; i++) {
		t[i].tid = p->tids[i];
		t[i].clear_tid_addr = i ? FINAL_B + B_CLEAR_TID(i) : 0;
		t[i].rseq_ptr = FINAL_B + B_RSEQ(i);
		t[i].rseq_size = sizeof(struct rseq);
		t[i].rseq_sig = 0x53053053;
		strncpy(t[i].comm, comms[i], sizeof(t[i].comm));
		t[i].stack_top = l->boot + l->boot_len - (uint64_t)i * RST_STACK_SIZE;
	}
	if (p->fault == FAULT_TID_TAKEN)
		t[1].tid = getppid();
	args->threads = (uintptr_t)t;
	args->nr_threads = NR_THREADS;
}

static void fill_mm(struct rst_args *args, const void *auxv_copy, const struct plan *p)
{
	struct rst_mm_map *mm = &args->mm;

	mm->start_code = FINAL_A;
	mm->end_code = FINAL_A + 2 * PAGE;
	mm->start_data = FINAL_B;
	mm->end_data = FINAL_B + 0x40;
	mm->start_brk = FINAL_B + PAGE;
	mm->brk = FINAL_B + PAGE;
	mm->start_stack = FINAL_B + B_STACK;
	mm->arg_start = FINAL_B + B_ARGS;
	mm->arg_end = mm->arg_start + sizeof(args_text);
	mm->env_start = FINAL_B + B_ENV;
	mm->env_end = mm->env_start + sizeof(env_text);
	mm->auxv = (uintptr_t)auxv_copy;
	mm->auxv_size = sizeof(auxv);
	mm->exe_fd = 0;		/* the restorer must take args->exe_fd instead */
	args->exe_fd = open(p->exe, O_RDONLY | O_CLOEXEC);
	if (args->exe_fd < 0)
		die(p->exe);
}

/* glibc 2.35+ registered rseq for this thread; the restorer must undo it before unmapping. */
static void fill_self_rseq(struct rst_args *args)
{
	if (!__rseq_size)
		return;
	args->self_rseq_ptr = (uintptr_t)__builtin_thread_pointer() + __rseq_offset;
	/* glibc registers at least the original 32-byte struct rseq; __rseq_size may be less. */
	args->self_rseq_size = __rseq_size < 32 ? 32 : __rseq_size;
	args->self_rseq_sig = RSEQ_SIG;
}

static void fill_args(struct rst_args *args, const struct plan *p, const struct layout *l)
{
	struct rst_vma *vmas = (struct rst_vma *)(args + 1);
	struct rst_thread *threads = (struct rst_thread *)(vmas + 2);
	uint64_t *auxv_copy = (uint64_t *)(threads + NR_THREADS);
	struct rst_sigaction *usr1 = &args->sigactions[SIGUSR1 - 1];

	args->magic = RST_ARGS_MAGIC;
	args->version = RST_ARGS_VERSION;
	args->pid = getpid();
	args->keep[0] = (struct rst_range){ l->boot, l->boot_len };
	args->keep[1] = (struct rst_range){ l->ctl, PAGE };
	args->keep[2] = (struct rst_range){ l->premap, PREMAP_PAGES * PAGE };
	args->nr_keep = 3;
	args->premap_start = l->premap;
	args->premap_len = PREMAP_PAGES * PAGE;
	fill_vmas(args, vmas, p, l);
	fill_threads(args, threads, p, l);
	args->vdso_addr = p->vdso_addr;
	args->vdso_text = p->vdso_text;
	memcpy(auxv_copy, auxv, sizeof(auxv));
	fill_mm(args, auxv_copy, p);
	*usr1 = (struct rst_sigaction){ .handler = FINAL_A, .flags = SA_SIGINFO | SA_RESTORER,
					.restorer = FINAL_A + 16, .mask = 1UL << (SIGUSR2 - 1) };
	args->sigaction_mask = 1UL << (SIGUSR1 - 1);
	fill_self_rseq(args);
	args->ctl = l->ctl;
	args->task_size = TASK_SIZE;
}

static __attribute__((noreturn)) void jump(uint64_t entry, uint64_t stack_top, uint64_t args)
{
	asm volatile("movq %0, %%rsp\n\tjmp *%1"
		     : : "r"(stack_top), "r"(entry), "D"(args) : "memory");
	__builtin_unreachable();
}

/*
 * Bootstrap region: blob (read-execute), args page, then one restorer stack per thread, the
 * highest for thread 0.
 */
static __attribute__((noreturn)) void child(struct plan *p, struct layout *l)
{
	size_t blob_len = restorer_blob_end - restorer_blob;
	uint64_t code_len = round_up(blob_len, PAGE);
	uint64_t all = ~0ULL;
	char *boot, *premap;

	p->tids[0] = getpid();
	l->boot_len = code_len + PAGE + NR_THREADS * RST_STACK_SIZE;
	boot = mmap(NULL, l->boot_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	premap = mmap(NULL, PREMAP_PAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (boot == MAP_FAILED || premap == MAP_FAILED)
		die("mmap");
	memcpy(boot, restorer_blob, blob_len);
	if (mprotect(boot, code_len, PROT_READ | PROT_EXEC))
		die("mprotect");
	l->boot = (uintptr_t)boot;
	l->premap = (uintptr_t)premap;
	l->ctl = (uintptr_t)p->ctl;
	fill_premap(l->premap);
	fill_args((struct rst_args *)(boot + code_len), p, l);
	if (sizeof(struct rst_args) + 2 * sizeof(struct rst_vma) +
	    NR_THREADS * sizeof(struct rst_thread) + sizeof(auxv) > PAGE)
		die("args page too small");
	if (p->fault == FAULT_BAD_PREMAP && munmap(premap + 4 * PAGE, PAGE))
		die("munmap");

	/*
	 * The raw syscall: glibc's sigprocmask() quietly leaves its own signals 32 and 33
	 * unblocked, and their handlers are about to be unmapped.
	 */
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof(all)))
		die("rt_sigprocmask");
	jump(l->boot, l->boot + l->boot_len, l->boot + code_len);
}

/* ---- parent: the controller's part --------------------------------------------------- */

/*
 * Waits until nr threads parked, an error is reported, or the child died; 10 s at most.
 * Returns the wait status if the child was reaped, else -1.
 */
static int wait_restorer(pid_t pid, struct rst_ctl *ctl, uint32_t nr)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int i, status;

	for (i = 0; i < 1000; i++) {
		if (__atomic_load_n(&ctl->threads_parked, __ATOMIC_ACQUIRE) >= nr)
			return -1;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "FAIL: restorer timed out (parked %u, error %d)\n", ctl->threads_parked,
		ctl->error);
	failures++;
	return -1;
}

static ssize_t read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len);
	close(fd);
	return n;
}

static ssize_t read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, buf, len, (off_t)addr);
	close(fd);
	return n;
}

static bool within(unsigned long s, unsigned long e, uint64_t start, uint64_t len)
{
	return s >= start && e <= start + len;
}

/* Every mapping must be the target's, the vDSO block, or a keep range the controller drops. */
static void check_maps(pid_t pid, const struct plan *p, const struct layout *l)
{
	char path[64], line[512], perms[8];
	unsigned long s, e;
	bool seen_a = false, seen_b = false, seen_vvar = false, seen_vdso = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f) {
		CHECK(0, "open %s: %s", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		if (s == FINAL_A) {
			seen_a = true;
			CHECK(e == FINAL_A + 2 * PAGE && !strcmp(perms, "r--p"), "vma A: %s", line);
		} else if (s == FINAL_B) {
			seen_b = true;
			CHECK(e == FINAL_B + PAGE && !strcmp(perms, "rw-p"), "vma B: %s", line);
		} else if (strstr(line, "[vvar]")) {
			seen_vvar = true;
			CHECK(s == p->vdso_addr, "[vvar] at %lx, not %lx", s, p->vdso_addr);
		} else if (strstr(line, "[vdso]")) {
			seen_vdso = true;
			CHECK(s == p->vdso_text, "[vdso] at %lx, not %lx", s, p->vdso_text);
		} else if (!strstr(line, "[vvar_vclock]") && !strstr(line, "[vsyscall]")) {
			CHECK(within(s, e, l->boot, l->boot_len) || within(s, e, l->ctl, PAGE),
			      "mapping left over: %s", line);
		}
	}
	fclose(f);
	CHECK(seen_a && seen_b, "final vmas missing (A %d, B %d)", seen_a, seen_b);
	CHECK(seen_vvar && seen_vdso, "vdso block missing (vvar %d, vdso %d)", seen_vvar,
	      seen_vdso);
}

static void check_memory(pid_t pid)
{
	static char buf[2 * PAGE];
	uint32_t cpu_id;
	size_t i;
	int t;

	CHECK(read_mem(pid, FINAL_A, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "read vma A");
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != (char)(i * 7 + 3))
			break;
	CHECK(i == sizeof(buf), "vma A differs at byte %zu", i);
	/* A registered rseq area gets cpu_id from the kernel on the next return to user space. */
	for (t = 0; t < NR_THREADS; t++) {
		CHECK(read_mem(pid, FINAL_B + B_RSEQ(t) + 4, &cpu_id, 4) == 4, "read rseq %d", t);
		CHECK(cpu_id != (uint32_t)RSEQ_CPU_ID_UNINITIALIZED,
		      "thread %d: rseq not registered", t);
	}
}

static void check_comm(pid_t pid, pid_t tid, const char *want)
{
	char path[64], comm[32] = "";
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	n = read_file(path, comm, sizeof(comm) - 1);
	if (n > 0 && comm[n - 1] == '\n')
		comm[n - 1] = '\0';
	CHECK(!strncmp(comm, want, 15) && strlen(comm) == (strlen(want) < 15 ? strlen(want) : 15),
	      "tid %d comm '%s', want '%.15s'", tid, comm, want);
}

static void check_threads(pid_t pid, const struct plan *p)
{
	char path[64];
	struct dirent *d;
	int n = 0, i;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir) {
		CHECK(0, "opendir %s", path);
		return;
	}
	while ((d = readdir(dir))) {
		pid_t tid = atoi(d->d_name);

		if (tid <= 0)
			continue;
		n++;
		for (i = 0; i < NR_THREADS && p->tids[i] != tid; i++)
			;
		CHECK(i < NR_THREADS, "unexpected thread %d", tid);
		if (i < NR_THREADS)
			check_comm(pid, tid, comms[i]);
	}
	closedir(dir);
	CHECK(n == NR_THREADS, "%d threads, want %d", n, NR_THREADS);
}

static uint64_t status_mask(const char *status, const char *key)
{
	const char *s = strstr(status, key);

	return s ? strtoull(s + strlen(key), NULL, 16) : 0;
}

static void check_signals(pid_t pid)
{
	uint64_t blockable = ~0ULL & ~(1ULL << (SIGKILL - 1)) & ~(1ULL << (SIGSTOP - 1));
	char path[64], status[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	n = read_file(path, status, sizeof(status) - 1);
	CHECK(n > 0, "read %s", path);
	status[n > 0 ? n : 0] = '\0';
	CHECK(status_mask(status, "SigCgt:\t") == 1ULL << (SIGUSR1 - 1), "SigCgt is not SIGUSR1");
	CHECK(status_mask(status, "SigBlk:\t") == blockable, "signals not all blocked: %#lx",
	      (unsigned long)status_mask(status, "SigBlk:\t"));
}

/* Fields 26-28 and 45-51 of /proc/PID/stat: what PR_SET_MM_MAP set. */
static void check_stat(pid_t pid)
{
	static const struct { int field; uint64_t want; } fields[] = {
		{ 26, FINAL_A }, { 27, FINAL_A + 2 * PAGE }, { 28, FINAL_B + B_STACK },
		{ 45, FINAL_B }, { 46, FINAL_B + 0x40 }, { 47, FINAL_B + PAGE },
		{ 48, FINAL_B + B_ARGS }, { 50, FINAL_B + B_ENV },
	};
	char path[64], stat[2048], *s, *save = NULL;
	uint64_t val[64] = { 0 };
	int field = 3;
	size_t i;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	n = read_file(path, stat, sizeof(stat) - 1);
	stat[n > 0 ? n : 0] = '\0';
	s = strrchr(stat, ')');
	CHECK(s, "bad %s", path);
	if (!s)
		return;
	for (s = strtok_r(s + 2, " ", &save); s && field < 64; s = strtok_r(NULL, " ", &save))
		val[field++] = strtoull(s, NULL, 10);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		CHECK(val[fields[i].field] == fields[i].want, "stat field %d: %#lx, want %#lx",
		      fields[i].field, (unsigned long)val[fields[i].field],
		      (unsigned long)fields[i].want);
}

static void check_proc_blob(pid_t pid, const char *name, const void *want, size_t len)
{
	char path[64], buf[512];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	n = read_file(path, buf, sizeof(buf));
	CHECK(n == (ssize_t)len && !memcmp(buf, want, len), "%s differs (%zd bytes)", path, n);
}

static void check_mm(pid_t pid, const struct plan *p)
{
	char path[64], exe[PATH_MAX] = "", *want;
	ssize_t n;

	check_stat(pid);
	check_proc_blob(pid, "cmdline", args_text, sizeof(args_text));
	check_proc_blob(pid, "environ", env_text, sizeof(env_text));
	check_proc_blob(pid, "auxv", auxv, sizeof(auxv));
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	want = realpath(p->exe, NULL);
	CHECK(want && !strcmp(exe, want), "exe is '%s', want '%s'", exe, want ? want : "?");
	free(want);
}

static void *shared_page(void)
{
	void *page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (page == MAP_FAILED)
		die("mmap shared");
	memset(page, 0, PAGE);
	return page;
}

static int plan_init(struct plan *p, enum fault fault)
{
	uint64_t vvar, vdso;

	memset(p, 0, sizeof(*p));
	p->fault = fault;
	p->exe = "/bin/true";
	if (find_vdso(&vvar, &vdso) || pick_tids(p->tids + 1, NR_THREADS - 1))
		return -1;
	p->vdso_addr = NEW_VDSO;
	p->vdso_text = NEW_VDSO + (vdso - vvar);
	p->ctl = shared_page();
	return 0;
}

/* Runs the blob in a child under plan p; the layout comes back in the page after the ctl. */
static pid_t start_child(struct plan *p, struct layout **l)
{
	pid_t pid;

	*l = (struct layout *)((char *)p->ctl + 512);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		child(p, *l);
	return pid;
}

static void test_restore(void)
{
	struct layout *l;
	struct plan p;
	int status;
	pid_t pid;

	if (plan_init(&p, FAULT_NONE)) {
		CHECK(0, "cannot plan: no vdso or no free tids");
		return;
	}
	pid = start_child(&p, &l);
	p.tids[0] = pid;
	status = wait_restorer(pid, p.ctl, NR_THREADS);
	CHECK(status == -1, "child died: status %#x", status);
	CHECK(!p.ctl->error, "restorer failed: error %d, pid %u, step %u, addr %#lx", p.ctl->error,
	      p.ctl->error_pid, p.ctl->error_step, (unsigned long)p.ctl->error_addr);
	if (status == -1 && p.ctl->threads_parked == NR_THREADS) {
		check_maps(pid, &p, l);
		check_memory(pid);
		check_threads(pid, &p);
		check_signals(pid);
		check_mm(pid, &p);
	}
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	munmap(p.ctl, PAGE);
}

/* The error_addr each fault must report. */
static uint64_t fault_addr(enum fault fault, const struct plan *p, const struct layout *l)
{
	switch (fault) {
	case FAULT_OVERLAP_KEEP:
		return l->boot;
	case FAULT_BAD_PREMAP:
		return FINAL_B;
	case FAULT_TID_TAKEN:
		return getpid();
	case FAULT_VDSO_TAKEN:
		return p->vdso_text;
	default:
		return 0;
	}
}

/* A bad plan: the restorer must report step and error, then exit 1 on its own. */
static void test_fault(enum fault fault, enum rst_step step, int err)
{
	struct layout *l;
	struct plan p;
	uint64_t want_addr;
	int status;
	pid_t pid;

	if (plan_init(&p, fault)) {
		CHECK(0, "cannot plan fault %d", fault);
		return;
	}
	pid = start_child(&p, &l);
	status = wait_restorer(pid, p.ctl, NR_THREADS);
	if (status == -1) {	/* a report of failure by hanging or parking is a failure */
		CHECK(0, "fault %d: child still running (parked %u)", fault, p.ctl->threads_parked);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "fault %d: status %#x", fault, status);
	CHECK(p.ctl->error == err && p.ctl->error_step == step && p.ctl->error_pid == (uint32_t)pid,
	      "fault %d: error %d step %u pid %u, want %d %u %d", fault, p.ctl->error,
	      p.ctl->error_step, p.ctl->error_pid, err, step, pid);
	want_addr = fault_addr(fault, &p, l);
	CHECK(p.ctl->error_addr == want_addr, "fault %d: error_addr %#lx, want %#lx", fault,
	      (unsigned long)p.ctl->error_addr, (unsigned long)want_addr);
	munmap(p.ctl, PAGE);
}

int main(void)
{
	if (geteuid()) {
		fprintf(stderr, "test_restorer: needs root (clone3 set_tid, PR_SET_MM)\n");
		return 1;
	}
	test_restore();
	test_fault(FAULT_OVERLAP_KEEP, RST_STEP_REMAP, -EINVAL);
	test_fault(FAULT_BAD_PREMAP, RST_STEP_REMAP, -EFAULT);
	test_fault(FAULT_TID_TAKEN, RST_STEP_THREADS, -EEXIST);
	test_fault(FAULT_VDSO_TAKEN, RST_STEP_VDSO, -EADDRNOTAVAIL);
	if (failures) {
		fprintf(stderr, "test_restorer: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_restorer: ok\n");
	return 0;
}
