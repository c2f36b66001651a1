/*
 * Unit test of src/infect/, the x86_64 register code and src/task/: a child with three
 * threads (one spinning, one counting in TLS, one in nanosleep) is seized, inspected with
 * remote syscalls and dumped, then released, and must run on as if nothing happened.
 * Also: signals that arrive while the child is held, a group-stopped child, the seize
 * errors, and a vfork parent that cannot stop. Exits 0 on success, 1 with a message.
 * CREST_TEST_LOG=4 shows crest's debug log.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"
#include "infect/infect.h"
#include "task/task.h"
#include "util/log.h"
#include "util/util.h"

#define SLEEP_SEC		2
#define ERESTART_RESTARTBLOCK	516
#define RSEQ_SIG_X86		0x53053053
#define QUEUED_VALUE		4242

/* Shared with the child (MAP_SHARED), so the parent sees it run without ptrace. */
struct shared {
	volatile uint64_t main_count;	/* the leader's spin loop */
	volatile uint64_t spin_count;	/* the spinner's TLS counter, copied out */
	volatile int usr1;		/* SIGUSR1 handler runs */
	volatile int rt;		/* SIGRTMIN+1 handler runs */
	volatile int rt_code, rt_value, rt_pid;	/* the last SIGRTMIN+1 siginfo */
	volatile int ready;
	volatile pid_t spin_tid, sleep_tid;
	volatile int sleep_done, sleep_rc, sleep_errno;
	volatile uint64_t sleep_ns;
	/* the second child: a thread in sigsuspend(), one looping in an rseq critical section */
	volatile pid_t susp_tid, rseq_tid;
	volatile int susp_wakeups, usr2;
	volatile uint64_t susp_mask_after;	/* its mask once sigsuspend() returned */
	volatile uint64_t rseq_aborts;
};

static struct shared *sh;
static volatile uint64_t known_var = 0x1122334455667788ULL;
static __thread uint64_t tls_counter;

/* glibc 2.35+: where this thread's struct rseq lies, from the thread pointer. */
extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

/* struct rseq_cs (linux/rseq.h): the critical section rseq_loop() spins in. */
static struct {
	uint32_t version, flags;
	uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32))) loop_cs;
extern const char rseq_loop_start[], rseq_loop_end[], rseq_loop_abort[];

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "test_infect: FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)
/* Polls cond every millisecond for up to ms milliseconds; true if it held (evaluated once a round). */
#define WAIT_FOR(cond, ms) ({ uint64_t __d = now_ns() + (ms) * 1000000ULL; bool __ok; \
	while (!(__ok = (cond)) && now_ns() < __d) usleep(1000); __ok; })

/* ---- the child ---- */

/* fork() whose child dies with the test, even when a failed check exits early. */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid = fork();

	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(3);
	return pid;
}

static void usr1_handler(int sig)
{
	(void)sig;
	sh->usr1++;
}

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sh->rt_code = si->si_code;
	sh->rt_value = si->si_value.sival_int;
	sh->rt_pid = si->si_pid;
	sh->rt++;
}

static void *spinner(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "spinner");
	sh->spin_tid = gettid();
	for (;;)
		sh->spin_count = ++tls_counter;
	return NULL;
}

static void *sleeper(void *arg)
{
	struct timespec ts = { SLEEP_SEC, 0 };
	uint64_t t0;

	(void)arg;
	pthread_setname_np(pthread_self(), "sleeper");
	sh->sleep_tid = gettid();
	t0 = now_ns();
	sh->sleep_rc = nanosleep(&ts, NULL);
	sh->sleep_errno = errno;
	sh->sleep_ns = now_ns() - t0;
	sh->sleep_done = 1;
	return NULL;
}

static void __attribute__((noreturn)) child_main(void)
{
	struct sigaction sa = { .sa_handler = usr1_handler, .sa_flags = SA_RESTART };
	pthread_t t;
	sigset_t set;

	umask(027);
	if (chdir("/tmp") || sigaction(SIGUSR1, &sa, NULL))
		_exit(2);
	sa.sa_sigaction = rt_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	if (sigaction(SIGRTMIN + 1, &sa, NULL))
		_exit(2);
	/* Only the leader takes SIGUSR1 and SIGRTMIN+1: the sleeper must sleep undisturbed. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&t, NULL, spinner, NULL) || pthread_create(&t, NULL, sleeper, NULL))
		_exit(2);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sh->ready = 1;
	for (;;)
		sh->main_count++;
}

/*
 * Spins forever inside an rseq critical section; only an abort (the kernel moving ip to
 * rseq_loop_abort after a preemption) gets it out, and it then arms the section again.
 */
static void __attribute__((noinline, noreturn)) rseq_loop(void)
{
	uint64_t tp, *cs_field;

	asm volatile("movq %%fs:0, %0" : "=r"(tp));
	cs_field = (uint64_t *)(tp + __rseq_offset + 8);	/* struct rseq .rseq_cs */
	for (;;) {
		asm volatile("movq %0, (%1)\n\t"
			     ".globl rseq_loop_start\n"
			     "rseq_loop_start:\n\t"
			     "1: jmp 1b\n"
			     ".globl rseq_loop_end\n"
			     "rseq_loop_end:\n\t"
			     /* ud1 carrying the signature the kernel checks before abort_ip */
			     ".byte 0x0f, 0xb9, 0x3d\n\t"
			     ".long 0x53053053\n"
			     ".globl rseq_loop_abort\n"
			     "rseq_loop_abort:\n\t"
			     : : "r"(&loop_cs), "r"(cs_field) : "memory");
		sh->rseq_aborts++;
	}
}

static void *rseq_thread(void *arg)
{
	(void)arg;
	loop_cs.start_ip = (uint64_t)rseq_loop_start;
	loop_cs.post_commit_offset = rseq_loop_end - rseq_loop_start;
	loop_cs.abort_ip = (uint64_t)rseq_loop_abort;
	sh->rseq_tid = gettid();
	rseq_loop();
}

static void usr2_handler(int sig)
{
	(void)sig;
	sh->usr2++;
}

/* Waits in sigsuspend() with an empty temporary mask; its real mask blocks SIGUSR2. */
static void *suspender(void *arg)
{
	sigset_t wait, cur;

	(void)arg;
	sigemptyset(&wait);
	sh->susp_tid = gettid();
	for (;;) {
		sigsuspend(&wait);
		pthread_sigmask(SIG_SETMASK, NULL, &cur);
		sh->susp_mask_after = sigismember(&cur, SIGUSR2) ? 1ULL << (SIGUSR2 - 1) : 0;
		sh->susp_wakeups++;
	}
	return NULL;
}

static void __attribute__((noreturn)) child2_main(void)
{
	struct sigaction sa = { .sa_handler = usr2_handler };
	pthread_t t;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (sigaction(SIGUSR2, &sa, NULL) || pthread_create(&t, NULL, suspender, NULL) ||
	    (__rseq_size && pthread_create(&t, NULL, rseq_thread, NULL)))
		_exit(2);
	for (;;)
		pause();
}

/* ---- helpers ---- */

static char proc_state(pid_t tid)
{
	char path[64], *buf, *p, c;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return '?';
	p = strrchr(buf, ')');
	c = p ? p[2] : '?';
	free(buf);
	return c;
}

/* A field of /proc/PID/status, as a number in base. */
static unsigned long long status_num(pid_t tid, const char *name, int base)
{
	char path[64], *buf, *p;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	CHECK(buf, "cannot read %s", path);
	p = strstr(buf, name);
	CHECK(p, "no %s in %s", name, path);
	v = strtoull(p + strlen(name) + 1, NULL, base);
	free(buf);
	return v;
}

static char *read_maps(pid_t pid)
{
	char path[64], *buf;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	CHECK(buf, "cannot read %s", path);
	return buf;
}

static bool maps_has(pid_t pid, uint64_t addr)
{
	char *maps = read_maps(pid), *line;
	unsigned long s, e;
	bool found = false;

	for (line = maps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && addr >= s && addr < e)
			found = true;
	free(maps);
	return found;
}

static void get_regs(pid_t tid, struct user_regs_struct *r)
{
	CHECK(!ptrace(PTRACE_GETREGS, tid, NULL, r), "GETREGS %d: %s", tid, strerror(errno));
}

static long remote(struct infect_ctl *ctl, long nr, long a0, long a1, long a2, long a3)
{
	long args[6] = { a0, a1, a2, a3, -1, 0 }, r;
	int ret = infect_syscall(ctl, nr, args, &r);

	CHECK(!ret, "remote syscall %ld: %s", nr, strerror(-ret));
	return r;
}

static double us(uint64_t ns)
{
	return ns / 1000.0;
}

/* ---- the checks ---- */

static void check_remote_calls(struct infect_ctl *ctl, pid_t pid)
{
	long args[6] = { 0 }, r;
	uint64_t t0, v, addr;
	char out[8192], in[8192];
	int i, n = 1000;

	t0 = now_ns();
	for (i = 0; i < n; i++)
		CHECK(remote(ctl, SYS_getpid, 0, 0, 0, 0) == pid, "remote getpid");
	printf("  remote syscall (getpid): %.1f us each, over %d\n", us((now_ns() - t0) / n), n);

	r = remote(ctl, SYS_mmap, 0, sizeof(out), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	CHECK((unsigned long)r < -4095UL, "remote mmap: %s", strerror((int)-r));
	addr = r;
	CHECK(maps_has(pid, addr), "remote mmap result %#lx not in maps", (unsigned long)addr);
	for (i = 0; i < (int)sizeof(out); i++)
		out[i] = (char)(i * 7 + 3);
	CHECK(!infect_write(ctl, addr, out, sizeof(out)), "infect_write");
	CHECK(!infect_read(ctl, addr, in, sizeof(in)), "infect_read");
	CHECK(!memcmp(in, out, sizeof(in)), "read back differs from what was written");
	CHECK(remote(ctl, SYS_munmap, addr, sizeof(out), 0, 0) == 0, "remote munmap");
	CHECK(!maps_has(pid, addr), "remote munmap left %#lx mapped", (unsigned long)addr);

	/* PROT_NONE: process_vm_readv/writev fail, the /proc/PID/mem fallback must not. */
	r = remote(ctl, SYS_mmap, 0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	CHECK((unsigned long)r < -4095UL, "remote mmap PROT_NONE: %s", strerror((int)-r));
	CHECK(!infect_write(ctl, r + 100, out, 64) && !infect_read(ctl, r + 100, in, 64) &&
	      !memcmp(in, out, 64), "PROT_NONE access through /proc/PID/mem");
	CHECK(remote(ctl, SYS_munmap, r, 4096, 0, 0) == 0, "remote munmap");

	CHECK(!infect_scratch(ctl, 100, &addr) && !infect_scratch(ctl, 200, &v) && v == addr,
	      "infect_scratch does not reuse its area");
	CHECK(!infect_scratch(ctl, 3 * 4096, &v) && maps_has(pid, v) && maps_has(pid, v + 3 * 4096 - 1),
	      "infect_scratch does not grow");

	CHECK(!infect_read(ctl, (uint64_t)&known_var, &v, sizeof(v)), "infect_read known_var");
	CHECK(v == 0x1122334455667788ULL, "known_var read %#lx", (unsigned long)v);

	CHECK(!infect_syscall_tid(ctl, sh->spin_tid, SYS_gettid, args, &r), "syscall in spinner");
	CHECK(r == sh->spin_tid, "remote gettid in spinner gave %ld", r);
}

static void check_core(struct infect_ctl *ctl, pid_t pid)
{
	const SigactionEntry *usr1 = NULL, *rt = NULL;
	TaskCore tc;
	size_t i;

	CHECK(!task_dump_core(ctl, pid, &tc), "task_dump_core");
	for (i = 0; i < tc.n_sigactions; i++) {
		const SigactionEntry *e = tc.sigactions[i];

		CHECK(e->sig != SIGKILL && e->sig != SIGTERM, "signal %u should be default", e->sig);
		if (e->sig == SIGUSR1)
			usr1 = e;
		if ((int)e->sig == SIGRTMIN + 1)
			rt = e;
	}
	CHECK(usr1, "no SIGUSR1 disposition dumped");
	CHECK(usr1->handler == (uint64_t)usr1_handler, "SIGUSR1 handler %#lx, want %p",
	      (unsigned long)usr1->handler, (void *)usr1_handler);
	CHECK(usr1->flags & SA_RESTART, "SIGUSR1 flags %#lx lack SA_RESTART", (unsigned long)usr1->flags);
	CHECK(!(usr1->flags & SA_SIGINFO) && usr1->restorer, "SIGUSR1 flags/restorer wrong");
	CHECK(rt && rt->handler == (uint64_t)rt_handler && (rt->flags & SA_SIGINFO),
	      "SIGRTMIN+1 disposition wrong");
	CHECK(tc.pid == (uint32_t)pid && tc.comm && !strcmp(tc.comm, "test_infect"), "comm %s", tc.comm);
	CHECK(tc.has_umask && tc.umask == 027, "umask %o", tc.umask);
	CHECK(tc.cwd && !strcmp(tc.cwd, "/tmp"), "cwd %s", tc.cwd);
	CHECK(tc.has_exit_signal && tc.exit_signal == SIGCHLD, "exit_signal %u", tc.exit_signal);
	CHECK(tc.has_personality, "no personality");
	printf("  task core: %zu sigactions, personality %#x\n", tc.n_sigactions, tc.personality);
	task_free_core(&tc);
}

static void check_thread(struct infect_ctl *ctl, pid_t tid, const char *comm, bool blocks_usr1)
{
	struct user_regs_struct live;
	ThreadCore th;
	int32_t tid_val;

	thread_core__init(&th);
	CHECK(!task_dump_thread(ctl, tid, &th), "task_dump_thread %d", tid);
	CHECK(th.tid == (uint32_t)tid && th.regs && th.regs->ip, "tid %d: regs", tid);
	CHECK(th.has_xsave && th.xsave.len >= 576, "tid %d: xsave %zu bytes", tid, th.xsave.len);
	CHECK(th.comm && !strcmp(th.comm, comm), "tid %d: comm %s, want %s", tid, th.comm, comm);
	CHECK(!!(th.blocked & (1ULL << (SIGUSR1 - 1))) == blocks_usr1, "tid %d: mask %#lx", tid,
	      (unsigned long)th.blocked);
	CHECK(th.rseq && th.rseq->ptr && th.rseq->size >= 32 && th.rseq->sig == RSEQ_SIG_X86,
	      "tid %d: rseq not dumped", tid);
	/* The kernel clears *clear_child_tid at exit, and glibc points it at the tid field. */
	CHECK(th.has_clear_tid_addr && th.clear_tid_addr, "tid %d: no clear_tid", tid);
	CHECK(!infect_read(ctl, th.clear_tid_addr, &tid_val, sizeof(tid_val)) && tid_val == tid,
	      "tid %d: *clear_child_tid = %d", tid, tid_val);
	get_regs(tid, &live);
	if (tid == sh->sleep_tid) {
		/* The image says "nanosleep returned EINTR"; the live thread is untouched. */
		CHECK(th.regs->orig_ax == SYS_clock_nanosleep && (int64_t)th.regs->ax == -EINTR,
		      "sleeper image: orig_ax %ld ax %ld", (long)th.regs->orig_ax, (long)th.regs->ax);
		CHECK((long)live.rax == -ERESTART_RESTARTBLOCK && live.rip == th.regs->ip,
		      "sleeper live regs changed by the dump: ax %ld", (long)live.rax);
	} else {
		CHECK(live.rip == th.regs->ip && live.rsp == th.regs->sp && live.fs_base == th.regs->fs_base,
		      "tid %d: dumped regs differ from live", tid);
	}
	if (tid == sh->spin_tid) {
		/* Writing back what was dumped must leave the thread able to run on. */
		CHECK(!arch_restore_thread_regs(tid, &th), "arch_restore_thread_regs");
		get_regs(tid, &live);
		CHECK(live.rip == th.regs->ip && live.rsp == th.regs->sp && (long)live.orig_rax == -1,
		      "registers after arch_restore_thread_regs");
	}
	task_free_thread(&th);
}

static void seize_all(const pid_t *tids, int n)
{
	uint64_t t0;
	int i, ret;

	for (i = 0; i < n; i++) {
		t0 = now_ns();
		ret = infect_seize(tids[i], 1000);
		CHECK(!ret, "seize %d: %s", tids[i], strerror(-ret));
		printf("  seize tid %d: %.1f us\n", tids[i], us(now_ns() - t0));
	}
	for (i = 0; i < n; i++)
		CHECK(proc_state(tids[i]) == 't', "tid %d not in a ptrace stop", tids[i]);
}

static void release_all(const pid_t *tids, int n)
{
	uint64_t t0 = now_ns();
	int i;

	for (i = 0; i < n; i++)
		CHECK(!infect_release(tids[i]), "release %d", tids[i]);
	printf("  release: %.1f us per thread\n", us((now_ns() - t0) / n));
}

/* Seize all, look at everything, release; the child must not notice. */
static void test_dump(pid_t pid)
{
	pid_t tids[3] = { pid, sh->spin_tid, sh->sleep_tid };
	struct user_regs_struct before, after, sleeper;
	uint64_t main_count, spin_count, t0;
	struct infect_ctl *ctl;
	char *maps_before, *maps_after;

	printf("dump of a running child (3 threads):\n");
	seize_all(tids, 3);
	main_count = sh->main_count;
	spin_count = sh->spin_count;
	usleep(50000);
	CHECK(main_count == sh->main_count && spin_count == sh->spin_count, "child runs while seized");
	get_regs(pid, &before);
	get_regs(sh->sleep_tid, &sleeper);
	CHECK((long)sleeper.orig_rax == SYS_clock_nanosleep, "sleeper not in clock_nanosleep");
	maps_before = read_maps(pid);
	CHECK(!kill(pid, SIGUSR1), "kill");	/* to be delivered after release */

	t0 = now_ns();
	CHECK(!infect_ctl_open(pid, pid, &ctl), "infect_ctl_open");
	printf("  infect_ctl_open: %.1f us\n", us(now_ns() - t0));
	check_remote_calls(ctl, pid);
	check_core(ctl, pid);
	check_thread(ctl, pid, "test_infect", false);
	check_thread(ctl, sh->spin_tid, "spinner", true);
	check_thread(ctl, sh->sleep_tid, "sleeper", true);
	CHECK(!infect_ctl_close(ctl), "infect_ctl_close");

	get_regs(pid, &after);
	CHECK(!memcmp(&before, &after, sizeof(before)), "leader registers changed");
	get_regs(sh->sleep_tid, &after);
	CHECK(!memcmp(&sleeper, &after, sizeof(after)), "sleeper registers changed");
	maps_after = read_maps(pid);
	CHECK(!strcmp(maps_before, maps_after), "mappings changed:\n%s\n---\n%s", maps_before, maps_after);
	free(maps_before);
	free(maps_after);
	CHECK(sh->usr1 == 0, "SIGUSR1 delivered while seized");
	release_all(tids, 3);

	CHECK(WAIT_FOR(sh->main_count > main_count && sh->spin_count > spin_count, 2000),
	      "child does not run on after release");
	CHECK(WAIT_FOR(sh->usr1 == 1, 2000), "SIGUSR1 sent while seized not delivered (%d)", sh->usr1);
	CHECK(WAIT_FOR(sh->sleep_done, 5000), "sleeper never woke up");
	CHECK(sh->sleep_rc == 0, "nanosleep returned %d (%s)", sh->sleep_rc, strerror(sh->sleep_errno));
	CHECK(sh->sleep_ns >= SLEEP_SEC * 1000000000ULL - 1000000 &&
	      sh->sleep_ns < SLEEP_SEC * 1000000000ULL + 600000000ULL,
	      "nanosleep took %.3f s", sh->sleep_ns / 1e9);
	printf("  after release: counters run, SIGUSR1 delivered, nanosleep(%d s) took %.3f s\n",
	       SLEEP_SEC, sh->sleep_ns / 1e9);
}

/*
 * A signal dequeued just before the interrupt trap (a signal-delivery-stop) must stay
 * pending with its siginfo. Made deterministic: seize by hand, let the signal stop the
 * thread, then ask infect_interrupt() for the trap stop.
 */
static void test_signal_before_stop(pid_t pid)
{
	union sigval val = { .sival_int = QUEUED_VALUE };
	int rt = sh->rt;
	int ret;

	printf("signal arriving before the stop:\n");
	CHECK(!ptrace(PTRACE_SEIZE, pid, NULL, NULL), "PTRACE_SEIZE");
	CHECK(!sigqueue(pid, SIGRTMIN + 1, val), "sigqueue");
	CHECK(WAIT_FOR(proc_state(pid) == 't', 2000), "no signal-delivery-stop");
	ret = infect_interrupt(pid, 1000);
	CHECK(!ret, "infect_interrupt: %s", strerror(-ret));
	CHECK(sh->rt == rt, "signal delivered at seize");
	CHECK(status_num(pid, "ShdPnd", 16) & (1ULL << (SIGRTMIN + 1 - 1)),
	      "signal not pending in the shared queue any more");
	CHECK(!(status_num(pid, "SigBlk", 16) & (1ULL << (SIGRTMIN + 1 - 1))),
	      "the signal mask was not put back");
	CHECK(!infect_release(pid), "release");
	CHECK(WAIT_FOR(sh->rt == rt + 1, 2000), "requeued signal never delivered");
	CHECK(sh->rt_code == SI_QUEUE && sh->rt_value == QUEUED_VALUE && sh->rt_pid == getpid(),
	      "siginfo changed: code %d value %d pid %d", sh->rt_code, sh->rt_value, sh->rt_pid);
	printf("  kept pending with its siginfo, delivered after release\n");
}

/* The same race left to chance: nothing may be lost either way. */
static void test_signal_race(pid_t pid)
{
	int rt = sh->rt, i, n = 200;

	for (i = 0; i < n; i++) {
		CHECK(!kill(pid, SIGRTMIN + 1), "kill");
		CHECK(!infect_seize(pid, 1000), "seize %d", i);
		CHECK(!infect_release(pid), "release %d", i);
	}
	CHECK(WAIT_FOR(sh->rt == rt + n, 3000), "%d of %d signals delivered", sh->rt - rt, n);
	printf("  %d signals raced with seize/release, none lost\n", n);
}

static void test_interrupt_running(pid_t pid)
{
	uint64_t count;

	CHECK(!infect_seize(pid, 1000), "seize");
	CHECK(!ptrace(PTRACE_CONT, pid, NULL, NULL), "PTRACE_CONT");
	count = sh->main_count;
	CHECK(WAIT_FOR(sh->main_count != count, 1000), "not running after PTRACE_CONT");
	CHECK(!infect_interrupt(pid, 1000), "infect_interrupt");
	count = sh->main_count;
	usleep(20000);
	CHECK(count == sh->main_count, "runs after infect_interrupt");
	CHECK(!infect_release(pid), "release");
	printf("  infect_interrupt stops a seized running thread\n");
}

/* A SIGSTOPped child stops for us too, and is still stopped after release. */
static void test_group_stop(pid_t pid)
{
	pid_t tids[2] = { pid, sh->spin_tid };
	struct infect_ctl *ctl;
	uint64_t count;

	printf("group-stopped child:\n");
	CHECK(!kill(pid, SIGSTOP), "SIGSTOP");
	CHECK(WAIT_FOR(proc_state(pid) == 'T' && proc_state(sh->spin_tid) == 'T', 2000), "not stopped");
	seize_all(tids, 2);
	CHECK(!infect_ctl_open(pid, pid, &ctl), "infect_ctl_open");
	CHECK(remote(ctl, SYS_getpid, 0, 0, 0, 0) == pid, "remote getpid in a stopped child");
	CHECK(!infect_ctl_close(ctl), "infect_ctl_close");
	release_all(tids, 2);
	count = sh->main_count;
	usleep(50000);
	CHECK(proc_state(pid) == 'T' && count == sh->main_count, "group stop lost on release");
	CHECK(!kill(pid, SIGCONT), "SIGCONT");
	CHECK(WAIT_FOR(sh->main_count != count, 2000), "does not run after SIGCONT");
	printf("  stays stopped after release, runs on SIGCONT\n");
}

static void test_errors(pid_t pid)
{
	pid_t z;
	int ret;

	z = fork_child();
	if (!z)
		_exit(0);
	CHECK(WAIT_FOR(proc_state(z) == 'Z', 2000), "no zombie");
	ret = infect_seize(z, 100);
	CHECK(ret == -ESRCH, "seize of a zombie: %d", ret);
	waitpid(z, NULL, 0);
	ret = infect_seize(z, 100);
	CHECK(ret == -ESRCH, "seize of a dead pid: %d", ret);
	CHECK(!infect_seize(pid, 1000), "seize");
	ret = infect_seize(pid, 1000);
	CHECK(ret == -EBUSY, "second seize: %d", ret);
	CHECK(!infect_release(pid), "release");
	printf("errors: zombie and dead -ESRCH, traced -EBUSY\n");
}

/* A vfork parent sleeps uninterruptibly until its child is done: -ETIMEDOUT, untouched. */
static void test_vfork_timeout(void)
{
	struct pollfd pfd;
	int fds[2], status, ret;
	char buf[2];
	uint64_t t0, dt;
	pid_t v;

	CHECK(!pipe(fds), "pipe");
	v = fork_child();
	if (!v) {
		struct timespec ts = { 3, 0 };

		if (!vfork()) {
			syscall(SYS_nanosleep, &ts, NULL);
			_exit(0);
		}
		_exit(write(fds[1], "ok", 2) == 2 ? 0 : 1);
	}
	close(fds[1]);
	CHECK(WAIT_FOR(proc_state(v) == 'D', 2000), "vfork parent not in D state");
	t0 = now_ns();
	ret = infect_seize(v, 500);
	dt = now_ns() - t0;
	CHECK(ret == -ETIMEDOUT, "seize of a vfork parent: %d", ret);
	CHECK(dt >= 500000000ULL && dt < 800000000ULL, "timeout took %.3f s", dt / 1e9);
	CHECK(status_num(v, "TracerPid", 10) == 0, "vfork parent left traced");
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 5000) == 1 && read(fds[0], buf, 2) == 2 && !memcmp(buf, "ok", 2),
	      "vfork parent did not carry on");
	CHECK(waitpid(v, &status, 0) == v && WIFEXITED(status) && !WEXITSTATUS(status),
	      "vfork parent exit status %#x", status);
	close(fds[0]);
	printf("vfork parent: -ETIMEDOUT after %.3f s, then carried on untouched\n", dt / 1e9);
}

/* Checks the rseq thread of the second child: a remote syscall must apply its abort. */
static void check_rseq_abort(struct infect_ctl *ctl, pid_t pid)
{
	struct user_regs_struct r;
	long args[6] = { 0 }, ret;

	get_regs(sh->rseq_tid, &r);
	if (r.rip != (uint64_t)rseq_loop_start) {
		printf("  rseq thread was seized outside its section (ip %#llx): abort not checked\n",
		       r.rip);
		return;
	}
	CHECK(!infect_syscall_tid(ctl, sh->rseq_tid, SYS_getpid, args, &ret) && ret == pid,
	      "remote getpid in the rseq thread");
	get_regs(sh->rseq_tid, &r);
	CHECK(r.rip == (uint64_t)rseq_loop_abort, "rseq critical section not aborted: ip %#llx",
	      r.rip);
}

/*
 * A thread in sigsuspend() (whose real mask the kernel keeps aside) and a thread inside an
 * rseq critical section: remote syscalls must leave both as the kernel would have.
 */
static void test_sigsuspend_rseq(void)
{
	pid_t pid, tids[3];
	struct user_regs_struct r;
	struct infect_ctl *ctl;
	uint64_t aborts;
	ThreadCore th;
	int n, status;

	printf("sigsuspend and rseq:\n");
	pid = fork_child();
	if (!pid)
		child2_main();
	CHECK(WAIT_FOR(sh->susp_tid && (sh->rseq_tid || !__rseq_size) &&
		       proc_state(sh->susp_tid) == 'S', 2000), "second child not ready");
	usleep(50000);
	tids[0] = pid;
	tids[1] = sh->susp_tid;
	tids[2] = sh->rseq_tid;
	n = sh->rseq_tid ? 3 : 2;
	seize_all(tids, n);
	CHECK(!infect_ctl_open(pid, pid, &ctl), "infect_ctl_open");

	get_regs(sh->susp_tid, &r);
	CHECK(r.orig_rax == SYS_rt_sigsuspend && (long)r.rax == -514, "not stopped in sigsuspend");
	thread_core__init(&th);
	CHECK(!task_dump_thread(ctl, sh->susp_tid, &th), "task_dump_thread");
	CHECK(th.blocked & (1ULL << (SIGUSR2 - 1)), "dumped sigsuspend's temporary mask, not the real one");
	CHECK(th.regs->ax == SYS_rt_sigsuspend && th.regs->ip == r.rip - 2,
	      "the image does not restart sigsuspend");
	task_free_thread(&th);
	if (sh->rseq_tid)
		check_rseq_abort(ctl, pid);
	CHECK(!infect_ctl_close(ctl), "infect_ctl_close");
	aborts = sh->rseq_aborts;
	release_all(tids, n);

	CHECK(!syscall(SYS_tgkill, pid, sh->susp_tid, SIGUSR2), "tgkill");
	CHECK(WAIT_FOR(sh->susp_wakeups == 1 && sh->usr2 == 1, 2000), "sigsuspend did not wake");
	CHECK(sh->susp_mask_after, "the real mask was lost once sigsuspend returned");
	CHECK(!sh->rseq_tid || WAIT_FOR(sh->rseq_aborts > aborts, 3000),
	      "rseq thread stuck inside its critical section");
	printf("  sigsuspend restarts with its real mask kept; rseq section aborted\n");
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* Killing the leader first: the traced spinner must not keep the process from being reaped. */
static void test_kill(pid_t pid)
{
	pid_t tids[2] = { pid, sh->spin_tid };
	int status = 0;

	seize_all(tids, 2);
	CHECK(!infect_kill(pid), "infect_kill");
	CHECK(WAIT_FOR(waitpid(pid, &status, __WALL | WNOHANG) == pid, 3000), "killed child not reapable");
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child not killed: %#x", status);
	CHECK(infect_kill(tids[1]) == -ESRCH, "infect_kill of a reaped thread did not say -ESRCH");
	printf("infect_kill: killed, and reapable by its parent\n");
}

int main(void)
{
	const char *lvl = getenv("CREST_TEST_LOG");
	char cpu[256];
	pid_t pid;

	log_init(lvl ? atoi(lvl) : LOG_ERROR, NULL);
	setvbuf(stdout, NULL, _IONBF, 0);
	arch_describe_cpu(cpu, sizeof(cpu));
	printf("%s\n", cpu);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	pid = fork_child();
	if (!pid)
		child_main();
	CHECK(WAIT_FOR(sh->ready && sh->spin_tid && sh->sleep_tid, 5000), "child not ready");
	/* Let the sleeper get into nanosleep. */
	CHECK(WAIT_FOR(proc_state(sh->sleep_tid) == 'S', 2000), "sleeper not asleep");
	usleep(100000);

	test_dump(pid);
	test_signal_before_stop(pid);
	test_signal_race(pid);
	test_interrupt_running(pid);
	test_group_stop(pid);
	test_errors(pid);
	test_vfork_timeout();
	test_sigsuspend_rseq();
	test_kill(pid);
	printf("test_infect: OK\n");
	return 0;
}
