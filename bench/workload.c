/*
 * workload: the process tree that `make bench` (build/bench/crestbench) dumps and restores.
 *
 *   workload --fifo PATH [--procs N] [--kib K | --mib M] [--threads T] [--fds F] [--vmas V]
 *            [--data random|half|altzero] [--seed S] [--sabotage]
 *
 * The root makes itself a session leader (crest dumps whole sessions) and forks N-1 children
 * (a flat tree). Every process maps K KiB of private anonymous memory, populates it in one call
 * (MADV_POPULATE_WRITE, as a restore would), then fills it. The root also starts T-1 threads,
 * opens F descriptors (each its own open of its own binary, so each is one open file
 * description to save) and maps V one-page areas with a hole between each two (so none merge).
 *
 * Data, per 4 KiB page: xorshift64 words seeded from (seed, process index, page index), so a page
 * that lands at the wrong address or in the wrong process fails the check just as a damaged one:
 *   random   the whole page (incompressible; no page is all zero);
 *   half     the first 2 KiB of every page, the last 2 KiB zero (every page holds data, and
 *            compresses to about half);
 *   altzero  every even page, the odd pages all zero (pages crest may leave out of the image).
 *
 * Every message goes to the FIFO at PATH as one line written with one write(2) (atomic under
 * PIPE_BUF), opened and closed again each time, so the FIFO is never among the descriptors that
 * crest saves. stdin, stdout and stderr are /dev/null once the arguments are read.
 *   R IDX PID pages=N data=ADDR    process IDX is set up and waits; its data starts at ADDR
 *   P IDX PID                      answer to SIGUSR1 (ping): the process runs user code
 *   V IDX PID OK pages=N threads=T ms=X     answer to SIGUSR2: every page and thread checked
 *   V IDX PID FAIL what            ... or the first difference found
 *   E IDX PID what                 setup failed; the process exits 2
 * SIGTERM, SIGINT or SIGHUP: exit 0. With --sabotage the root damages one byte of its data
 * before each check, which must then FAIL (tests/test_bench.py proves the check can fail).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14; the 6.1 headers of glibc 2.36 may lack it */
#endif

#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))
#define THREAD_STACK (256 * 1024)
#define THREAD_ACK_WAIT_S 10

enum data_kind { DATA_RANDOM, DATA_HALF, DATA_ALTZERO };

static struct {
	const char *fifo;
	long procs, threads, fds, vmas;
	size_t kib;
	enum data_kind data;
	uint64_t seed;
	bool sabotage;
} cfg = { .procs = 1, .threads = 1, .kib = 1024, .seed = 0x5eed };

/* What this process holds: its index in the tree, its data and its one-page areas. */
static struct {
	long idx;
	uint8_t *data;
	size_t data_pages;
	uint8_t *vma_base;	/* 2 * vmas pages reserved; the even ones stay mapped */
} me;

/* The root's threads: each waits for a new generation and acknowledges it. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake, acked;
	unsigned long gen;
	long acks;
} thr = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

/* One line to the FIFO with one write; dropped if nobody reads the FIFO any more. */
static void __attribute__((format(printf, 2, 3))) say(char tag, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n, fd;

	n = snprintf(line, sizeof(line), "%c %ld %d ", tag, me.idx, getpid());
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* O_NONBLOCK: open fails with ENXIO instead of hanging when the reader is gone. */
	fd = open(cfg.fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	fcntl(fd, F_SETFL, 0);	/* a full FIFO: wait rather than lose the line */
	while (write(fd, line, n) < 0 && errno == EINTR)
		;
	close(fd);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say('E', "%s", msg);
	_exit(2);
}

/* --- data ------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The first word of page pgno's xorshift stream; never 0, so a random page is never zero. */
static uint64_t page_seed(uint64_t pgno)
{
	uint64_t s = splitmix64(cfg.seed ^ ((uint64_t)me.idx << 40) ^ pgno);

	return s ? s : 1;
}

static uint64_t xorshift64(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* How many leading words of page pgno hold data; the rest of the page is zero. */
static size_t data_words(uint64_t pgno)
{
	switch (cfg.data) {
	case DATA_HALF:
		return WORDS_PER_PAGE / 2;
	case DATA_ALTZERO:
		return pgno % 2 ? 0 : WORDS_PER_PAGE;
	default:
		return WORDS_PER_PAGE;
	}
}

/* Fills one page; pages come populated (zero), so only the data words are written. */
static void fill_page(uint64_t *w, uint64_t pgno)
{
	size_t n = data_words(pgno);
	uint64_t x = page_seed(pgno);

	for (size_t i = 0; i < n; i++) {
		w[i] = x;
		x = xorshift64(x);
	}
}

/* Index of the first word of the page that differs from what fill_page() wrote, or -1. */
static long check_page(const uint64_t *w, uint64_t pgno)
{
	size_t n = data_words(pgno);
	uint64_t x = page_seed(pgno);
	size_t i;

	for (i = 0; i < n; i++) {
		if (w[i] != x)
			return i;
		x = xorshift64(x);
	}
	for (; i < WORDS_PER_PAGE; i++)
		if (w[i])
			return i;
	return -1;
}

/* Page pgno of the whole set: the data pages first, then one page per one-page area. */
static uint64_t *page_addr(uint64_t pgno)
{
	if (pgno < me.data_pages)
		return (uint64_t *)(me.data + pgno * PAGE);
	return (uint64_t *)(me.vma_base + (pgno - me.data_pages) * 2 * PAGE);
}

static uint64_t nr_pages(void)
{
	return me.data_pages + (me.idx == 0 ? cfg.vmas : 0);
}

/* --- setup ------------------------------------------------------------------------------ */

/* Maps len bytes and populates them in one call: one fault per page costs ~10-20 us here. */
static void *map_populated(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap of %zu KiB: %s", len / 1024, strerror(errno));
	if (madvise(p, len, MADV_POPULATE_WRITE) && errno != EINVAL)
		die("MADV_POPULATE_WRITE of %zu KiB: %s", len / 1024, strerror(errno));
	return p;
}

/* V one-page areas: 2V pages mapped and populated at once, then every odd page unmapped. */
static void map_vmas(void)
{
	if (!cfg.vmas)
		return;
	me.vma_base = map_populated(cfg.vmas * 2 * PAGE);
	for (long i = 0; i < cfg.vmas; i++)
		if (munmap(me.vma_base + (2 * i + 1) * PAGE, PAGE))
			die("munmap of hole %ld: %s", i, strerror(errno));
}

static void fill_all(void)
{
	uint64_t n = nr_pages();

	for (uint64_t pg = 0; pg < n; pg++)
		fill_page(page_addr(pg), pg);
}

static void open_fds(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	if (rl.rlim_cur < (rlim_t)cfg.fds + 64) {
		/* Raising the soft limit up to the hard one needs no privilege. */
		rl.rlim_cur = (rlim_t)cfg.fds + 64 < rl.rlim_max ? (rlim_t)cfg.fds + 64 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)rl.rlim_cur,
			    strerror(errno));
	}
	for (long i = 0; i < cfg.fds; i++)
		if (open("/proc/self/exe", O_RDONLY) < 0)
			die("open of descriptor %ld of %ld (RLIMIT_NOFILE %lu/%lu): %s", i + 1,
			    cfg.fds, (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max,
			    strerror(errno));
}

static void *thread_main(void *arg)
{
	unsigned long seen = 0;

	pthread_mutex_lock(&thr.lock);
	for (;;) {
		while (thr.gen == seen)
			pthread_cond_wait(&thr.wake, &thr.lock);
		seen = thr.gen;
		thr.acks++;
		pthread_cond_signal(&thr.acked);
	}
	return arg;
}

static void start_threads(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (long i = 1; i < cfg.threads; i++) {
		err = pthread_create(&t, &attr, thread_main, NULL);
		if (err)
			die("thread %ld of %ld: %s", i + 1, cfg.threads, strerror(err));
	}
	pthread_attr_destroy(&attr);
}

/* Forks children 1..procs-1 before any data is mapped, so none inherits the root's. */
static void fork_children(void)
{
	for (long i = 1; i < cfg.procs; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork of process %ld of %ld: %s", i + 1, cfg.procs, strerror(errno));
		if (pid == 0) {
			me.idx = i;
			return;
		}
	}
}

static void setup(void)
{
	if (getsid(0) != getpid() && setsid() < 0)
		die("setsid: %s", strerror(errno));
	fork_children();
	me.data_pages = cfg.kib * 1024 / PAGE;
	if (me.data_pages)
		me.data = map_populated(me.data_pages * PAGE);
	if (me.idx == 0) {
		map_vmas();
		open_fds();
	}
	fill_all();
	if (me.idx == 0)
		start_threads();
}

/* --- the checks ------------------------------------------------------------------------- */

/* Wakes every other thread and waits until each has run once since. */
static long ping_threads(void)
{
	struct timespec until;
	long acks;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += THREAD_ACK_WAIT_S;
	pthread_mutex_lock(&thr.lock);
	thr.gen++;
	thr.acks = 0;
	pthread_cond_broadcast(&thr.wake);
	while (thr.acks < cfg.threads - 1)
		if (pthread_cond_timedwait(&thr.acked, &thr.lock, &until) == ETIMEDOUT)
			break;
	acks = thr.acks;
	pthread_mutex_unlock(&thr.lock);
	return acks + 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void verify(void)
{
	uint64_t n = nr_pages();
	long threads = 1, want = me.idx == 0 ? cfg.threads : 1;
	double t0 = now_ms();

	if (cfg.sabotage && me.idx == 0 && n)
		((volatile uint8_t *)page_addr(n / 2))[100] ^= 0x40;
	for (uint64_t pg = 0; pg < n; pg++) {
		long word = check_page(page_addr(pg), pg);

		if (word >= 0) {
			say('V', "FAIL page %" PRIu64 " of %" PRIu64 " (%s) at %p, word %ld differs",
			    pg, n, pg < me.data_pages ? "data" : "one-page area",
			    (void *)page_addr(pg), word);
			return;
		}
	}
	if (me.idx == 0 && cfg.threads > 1)
		threads = ping_threads();
	if (threads != want) {
		say('V', "FAIL only %ld of %ld threads answered within %d s", threads, want,
		    THREAD_ACK_WAIT_S);
		return;
	}
	say('V', "OK pages=%" PRIu64 " threads=%ld ms=%.1f", n, threads, now_ms() - t0);
}

/* The signals that carry commands (see the top of this file). */
static void command_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* Waits for commands; signals are blocked in every thread and taken here one at a time. */
static void serve(void)
{
	sigset_t set;
	int sig;

	command_signals(&set);
	say('R', "pages=%" PRIu64 " data=%p", nr_pages(), (void *)me.data);
	for (;;) {
		sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			say('P', "ok");
		else if (sig == SIGUSR2)
			verify();
		else if (sig > 0)
			_exit(0);
		/* < 0: EINTR, e.g. when crest's ptrace stop ended the wait */
	}
}

/* --- arguments -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: workload --fifo PATH [--procs N] [--kib K | --mib M] [--threads T]\n"
		   "                [--fds F] [--vmas V] [--data random|half|altzero] [--seed S]\n"
		   "                [--sabotage]\n"
		   "A process tree for the crest benchmark; see the comment at the top of bench/workload.c.\n");
}

static long parse_num(const char *s, const char *what, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || *end || v < min) {
		fprintf(stderr, "workload: bad %s '%s' (a number >= %ld)\n", what, s, min);
		exit(2);
	}
	return v;
}

static enum data_kind parse_data(const char *s)
{
	if (!strcmp(s, "random"))
		return DATA_RANDOM;
	if (!strcmp(s, "half"))
		return DATA_HALF;
	if (!strcmp(s, "altzero"))
		return DATA_ALTZERO;
	fprintf(stderr, "workload: bad --data '%s' (random, half or altzero)\n", s);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "fifo", required_argument, NULL, 'f' }, { "procs", required_argument, NULL, 'p' },
		{ "kib", required_argument, NULL, 'k' }, { "mib", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' }, { "fds", required_argument, NULL, 'F' },
		{ "vmas", required_argument, NULL, 'V' }, { "data", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' }, { "sabotage", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': cfg.fifo = optarg; break;
		case 'p': cfg.procs = parse_num(optarg, "--procs", 1); break;
		case 'k': cfg.kib = parse_num(optarg, "--kib", 0); break;
		case 'm': cfg.kib = parse_num(optarg, "--mib", 0) * 1024; break;
		case 't': cfg.threads = parse_num(optarg, "--threads", 1); break;
		case 'F': cfg.fds = parse_num(optarg, "--fds", 0); break;
		case 'V': cfg.vmas = parse_num(optarg, "--vmas", 0); break;
		case 'd': cfg.data = parse_data(optarg); break;
		case 's': cfg.seed = parse_num(optarg, "--seed", 0); break;
		case 'S': cfg.sabotage = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (!cfg.fifo || optind != argc) {
		usage(stderr);
		exit(2);
	}
}

/* Blocks the command signals before any thread or child exists, so all inherit the mask. */
static void block_signals(void)
{
	sigset_t set;

	command_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static void null_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		die("open /dev/null: %s", strerror(errno));
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	block_signals();
	null_stdio();
	setup();
	serve();
	return 0;
}
