/*
 * pagecopy: how fast can crest move a process's memory into an image on tmpfs, and back?
 *
 * One run measures, on the same machine and in the same conditions:
 *   limits  memcpy of a populated buffer; write() of a populated buffer to tmpfs in 4 MiB writes;
 *   A       dump: process_vm_readv of a stopped child's memory into a reused, populated buffer,
 *           then write() to a file (buffer sizes 2, 4, 16 MiB; one or many remote iovs a call);
 *   B       dump: the child vmsplice()s its own memory into a pipe (as a parasite would) and
 *           this process splice()s the pipe into the file (pipe sizes 1, 4, 16 MiB);
 *   C       restore: read() of the image into fresh memory, into memory populated first with
 *           MADV_POPULATE_WRITE, and into an mmap(MAP_POPULATE) area.
 * Every figure is the median of --runs runs (after --warmup untimed ones) with min and max, in
 * GB/s (10^9 bytes a second), and its ratio to the measured memcpy and tmpfs-write limits.
 * The runs of a phase alternate between its configurations, and "paired" is the median of each
 * run's speed over that of what crest does now (A 4 MiB; C MADV_POPULATE_WRITE) in the same
 * round: on a shared machine, bursts of load then hit both sides. Each output is checked against
 * a hash of its source. The table goes to stdout, the raw run times to a JSON file.
 *
 * Pipes above /proc/sys/fs/pipe-max-size need CAP_SYS_RESOURCE. Without it, root raises the
 * sysctl just long enough to size the pipes, then writes the old value back (also on exit,
 * on failure and on SIGINT/SIGTERM/SIGHUP). --no-sysctl skips the sizes that would need it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "json-str.h"
#include <sys/utsname.h>
#include <sys/wait.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define KiB (1UL << 10)
#define MiB (1UL << 20)
#define IO_CHUNK (4 * MiB)	/* write() size of the tmpfs limit; read size when verifying */
#define MAX_RUNS 101
#define MAX_IOV 1024		/* IOV_MAX */
#define PIPE_MAX_PATH "/proc/sys/fs/pipe-max-size"
#define SEED 0x9e3779b97f4a7c15ULL

static struct {
	size_t mem;		/* bytes of memory in the child */
	size_t limit_len;	/* bytes of the memcpy / tmpfs-write limit buffers */
	int runs, warmup;
	const char *json, *dir;
	bool sysctl;		/* may raise pipe-max-size */
} cfg = {
	.mem = 1024 * MiB,
	.limit_len = 1024 * MiB,
	.runs = 5,
	.warmup = 1,
	.json = "build/bench/pagecopy.json",
	.dir = "/dev/shm",
	.sysctl = true,
};

/* --- state the signal handler and atexit clean up -------------------------------------- */

static volatile pid_t g_child;
static char g_paths[2][PATH_MAX];	/* [0]: the dump file of a run, [1]: the restore image */
static char pms_orig[32];		/* pipe-max-size as found, with its newline */
static size_t pms_orig_len;
static volatile sig_atomic_t pms_raised;

/* Async-signal-safe: open, write, close. */
static void pms_write_back(void)
{
	int fd;

	if (!pms_raised)
		return;
	fd = open(PIPE_MAX_PATH, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, pms_orig, pms_orig_len) == (ssize_t)pms_orig_len)
			pms_raised = 0;
		close(fd);
	}
}

static void cleanup_files_and_child(void)
{
	for (int i = 0; i < 2; i++)
		if (g_paths[i][0])
			unlink(g_paths[i]);
	if (g_child > 0)
		kill(g_child, SIGKILL);
}

static void on_signal(int sig)
{
	pms_write_back();
	cleanup_files_and_child();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void at_exit(void)
{
	pid_t child = g_child;

	pms_write_back();
	if (pms_raised)
		fprintf(stderr, "pagecopy: could not write %s back to %.*s: do it by hand\n",
			PIPE_MAX_PATH, (int)pms_orig_len - 1, pms_orig);
	cleanup_files_and_child();
	if (child > 0)
		waitpid(child, NULL, 0);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pagecopy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* --- small helpers ------------------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *map_mem(size_t len, bool populate)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);

	if (p == MAP_FAILED)
		die("mmap of %zu MiB: %s", len / MiB, strerror(errno));
	return p;
}

/* xorshift64*: incompressible, and cheap enough to fill a GiB in well under a second. */
static void fill_random(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p, x = seed | 1;

	for (size_t i = 0; i < len / 8; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		w[i] = x * 0x2545f4914f6cdd1dULL;
	}
}

/* Order-dependent 4-lane FNV-style hash; every update must be a multiple of 32 bytes. */
struct hash {
	uint64_t h[4];
};

static void hash_init(struct hash *h)
{
	for (int l = 0; l < 4; l++)
		h->h[l] = 0xcbf29ce484222325ULL + l;
}

static void hash_update(struct hash *h, const void *p, size_t len)
{
	const uint64_t *w = p;

	for (size_t i = 0; i + 4 <= len / 8; i += 4)
		for (int l = 0; l < 4; l++)
			h->h[l] = (h->h[l] ^ w[i + l]) * 0x100000001b3ULL;
}

static uint64_t hash_final(const struct hash *h)
{
	uint64_t r = 0;

	for (int l = 0; l < 4; l++)
		r = (r ^ h->h[l]) * 0x9e3779b97f4a7c15ULL + (r >> 29);
	return r;
}

static uint64_t hash_mem(const void *p, size_t len)
{
	struct hash h;

	hash_init(&h);
	hash_update(&h, p, len);
	return hash_final(&h);
}

static int write_full(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

static int read_full(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;	/* the file is shorter than expected */
		buf += n;
		len -= n;
	}
	return 0;
}

/* Scratch buffer for verification reads: populated once, outside every timed region. */
static char *scratch;

/* Hash of a file that must hold exactly len bytes. */
static int hash_file(const char *path, size_t len, uint64_t *out)
{
	struct hash h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || (size_t)st.st_size != len) {
		close(fd);
		return -EIO;
	}
	hash_init(&h);
	for (size_t off = 0; off < len && !err; off += IO_CHUNK) {
		size_t n = len - off < IO_CHUNK ? len - off : IO_CHUNK;

		err = read_full(fd, scratch, n);
		if (!err)
			hash_update(&h, scratch, n);
	}
	close(fd);
	*out = hash_final(&h);
	return err;
}

static char *read_line_of(const char *path, const char *key, char *buf, size_t sz)
{
	FILE *f = fopen(path, "re");
	char line[512];

	buf[0] = 0;
	if (!f)
		return buf;
	while (fgets(line, sizeof(line), f)) {
		char *colon;

		if (key && strncmp(line, key, strlen(key)))
			continue;
		colon = key ? strchr(line, ':') : NULL;
		snprintf(buf, sz, "%.*s", (int)sz - 1,
			 colon ? colon + 1 + strspn(colon + 1, " \t") : line);
		buf[strcspn(buf, "\n")] = 0;
		break;
	}
	fclose(f);
	return buf;
}

/* --- results ------------------------------------------------------------------------------- */

struct sample {
	double secs;
	double aux;		/* share of the time in process_vm_readv (A) or populating (C) */
	int verified;		/* 1: the output matched the source, -1: it did not, 0: not checked */
};

struct result {
	const char *group;	/* limit, A, B, C, ref */
	char name[96];
	size_t bytes;
	int n;
	double secs[MAX_RUNS];
	double aux[MAX_RUNS];
	bool has_aux;
	int verified;
	char skipped[96];	/* reason, when not measured */
	double med, lo, hi;	/* GB/s */
	double aux_med;
	struct result *base;	/* what crest does now, timed in the same rounds (see "paired") */
	double paired;		/* median over rounds of base time / this time: > 1 is faster */
};

static struct result results[40];
static int nresults;
static double lim_memcpy, lim_tmpfs;	/* median GB/s of the two limits */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static struct result *new_result(const char *group, size_t bytes, const char *fmt, ...)
{
	struct result *r;
	va_list ap;

	if (nresults == (int)(sizeof(results) / sizeof(results[0])))
		die("too many results");
	r = &results[nresults++];
	memset(r, 0, sizeof(*r));
	r->group = group;
	r->bytes = bytes;
	va_start(ap, fmt);
	vsnprintf(r->name, sizeof(r->name), fmt, ap);
	va_end(ap);
	return r;
}

typedef int (*run_fn)(void *arg, struct sample *s, bool last);

enum child_state { CHILD_ANY, CHILD_STOPPED, CHILD_RUNNING };

struct job {
	struct result *r;
	run_fn fn;
	void *arg;
	enum child_state child;	/* what the run needs the child to be doing */
};

static void set_child(enum child_state want);

static void finish(struct result *r)
{
	double gbps[MAX_RUNS];

	r->n = cfg.runs;
	for (int i = 0; i < r->n; i++)
		gbps[i] = r->bytes / r->secs[i] / 1e9;
	r->med = median(gbps, r->n);
	qsort(gbps, r->n, sizeof(*gbps), cmp_double);
	r->lo = gbps[0];
	r->hi = gbps[r->n - 1];
	if (r->has_aux)
		r->aux_med = median(r->aux, r->n);
	if (r->base) {
		double q[MAX_RUNS];

		for (int i = 0; i < r->n; i++)
			q[i] = r->base->secs[i] / r->secs[i];
		r->paired = median(q, r->n);
	}
	fprintf(stderr, "  %-5s %-52s %6.2f GB/s (%.2f-%.2f)%s\n", r->group, r->name, r->med,
		r->lo, r->hi, r->verified < 0 ? "  OUTPUT MISMATCH" : "");
}

/*
 * Runs the jobs of a phase round-robin, warmup + runs rounds, and keeps the timed rounds: a
 * burst of noise from elsewhere on the machine then hits every configuration of the phase,
 * not just the one that happened to be running. Any failure ends the benchmark.
 */
static void run_jobs(struct job *jobs, int n)
{
	for (int i = -cfg.warmup; i < cfg.runs; i++) {
		for (int j = 0; j < n; j++) {
			struct result *r = jobs[j].r;
			struct sample s = { 0 };
			int err;

			set_child(jobs[j].child);
			err = jobs[j].fn(jobs[j].arg, &s, i == cfg.runs - 1);
			if (err)
				die("%s: %s", r->name, strerror(-err));
			if (i < 0)
				continue;
			r->secs[i] = s.secs;
			r->aux[i] = s.aux;
			r->verified = s.verified;
		}
		fprintf(stderr, "  round %d/%d done%s\n", i + cfg.warmup + 1, cfg.warmup + cfg.runs,
			i < 0 ? " (warm-up, not counted)" : "");
	}
	for (int j = 0; j < n; j++)
		finish(jobs[j].r);
}

/* --- limits -------------------------------------------------------------------------------- */

struct limit_arg {
	char *src, *dst;
	size_t len;
	const char *path;
	bool reuse;		/* write the same IO_CHUNK bytes over and over */
};

static int run_memcpy(void *arg, struct sample *s, bool last)
{
	struct limit_arg *a = arg;
	double t0 = now();

	memcpy(a->dst, a->src, a->len);
	s->secs = now() - t0;
	if (last)
		s->verified = memcmp(a->dst, a->src, a->len) ? -1 : 1;
	return 0;
}

static int run_tmpfs_write(void *arg, struct sample *s, bool last)
{
	struct limit_arg *a = arg;
	double t0 = now();
	int fd = open(a->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err = 0;

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < a->len && !err; off += IO_CHUNK) {
		size_t n = a->len - off < IO_CHUNK ? a->len - off : IO_CHUNK;

		err = write_full(fd, a->reuse ? a->src : a->src + off, n);
	}
	close(fd);
	s->secs = now() - t0;
	if (!err && last && !a->reuse) {
		uint64_t h;

		err = hash_file(a->path, a->len, &h);
		s->verified = !err && h == hash_mem(a->src, a->len) ? 1 : -1;
	}
	unlink(a->path);
	return err;
}

static void measure_limits(void)
{
	struct limit_arg a = { .len = cfg.limit_len, .path = g_paths[0] }, b;
	struct job jobs[3];

	a.src = map_mem(a.len, true);
	a.dst = map_mem(a.len, true);
	fill_random(a.src, a.len, SEED ^ 1);
	b = a;
	b.reuse = true;
	jobs[0] = (struct job){ new_result("limit", a.len, "memcpy, %zu MiB populated -> populated",
					   a.len / MiB), run_memcpy, &a };
	jobs[1] = (struct job){ new_result("limit", a.len, "tmpfs write(), 4 MiB writes of a %zu MiB buffer",
					   a.len / MiB), run_tmpfs_write, &a };
	jobs[2] = (struct job){ new_result("ref", a.len, "tmpfs write(), one 4 MiB buffer written again"),
				run_tmpfs_write, &b };
	run_jobs(jobs, 3);
	lim_memcpy = jobs[0].r->med;
	lim_tmpfs = jobs[1].r->med;
	munmap(a.src, a.len);
	munmap(a.dst, a.len);
}

/* --- the child ----------------------------------------------------------------------------- */

enum { CMD_VMSPLICE = 1, CMD_EXIT = 2 };

struct cmd {
	int op;
	int pipe;		/* index into the pipes */
};

struct child_hello {
	uint64_t addr;
	uint64_t hash;
	int64_t err;
};

#define NPIPES 3
static const size_t pipe_want[NPIPES] = { 1 * MiB, 4 * MiB, 16 * MiB };
static int pipe_rd[NPIPES] = { -1, -1, -1 }, pipe_wr[NPIPES] = { -1, -1, -1 };
static size_t pipe_size[NPIPES];	/* as set; 0 when it could not be */
static char pipe_skip[NPIPES][64];

static void child_main(int ctl)
{
	struct child_hello hello = { 0 };
	char *mem;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	mem = mmap(NULL, cfg.mem, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		hello.err = -errno;
	} else {
		fill_random(mem, cfg.mem, SEED);
		hello.addr = (uintptr_t)mem;
		hello.hash = hash_mem(mem, cfg.mem);
	}
	if (write(ctl, &hello, sizeof(hello)) != sizeof(hello) || hello.err)
		_exit(1);
	for (;;) {
		struct cmd c;
		int64_t res = 0;
		struct iovec iov = { mem, cfg.mem };

		if (read(ctl, &c, sizeof(c)) != sizeof(c) || c.op != CMD_VMSPLICE)
			_exit(0);
		/* Pages go into the pipe by reference; each call returns once the pipe is full. */
		while (iov.iov_len) {
			ssize_t n = vmsplice(pipe_wr[c.pipe], &iov, 1, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				res = -errno;
				break;
			}
			iov.iov_base = (char *)iov.iov_base + n;
			iov.iov_len -= n;
		}
		if (write(ctl, &res, sizeof(res)) != sizeof(res))
			_exit(1);
	}
}

static int ctl_fd = -1;
static uint64_t child_addr, child_hash;

static void start_child(void)
{
	struct child_hello hello;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		close(sv[0]);
		for (int i = 0; i < NPIPES; i++)
			if (pipe_rd[i] >= 0)
				close(pipe_rd[i]);
		child_main(sv[1]);
		_exit(0);
	}
	g_child = pid;
	close(sv[1]);
	ctl_fd = sv[0];
	/* Only the child writes into the pipes: if it dies, splice() sees the end of the pipe. */
	for (int i = 0; i < NPIPES; i++)
		if (pipe_wr[i] >= 0) {
			close(pipe_wr[i]);
			pipe_wr[i] = -1;
		}
	if (read(ctl_fd, &hello, sizeof(hello)) != sizeof(hello))
		die("the child died while populating %zu MiB", cfg.mem / MiB);
	if (hello.err)
		die("child: mmap of %zu MiB: %s", cfg.mem / MiB, strerror(-hello.err));
	child_addr = hello.addr;
	child_hash = hello.hash;
}

static enum child_state child_now = CHILD_RUNNING;

/* Path A reads a stopped child, as crest reads a frozen target; path B needs it running. */
static void set_child(enum child_state want)
{
	int st;

	if (want == CHILD_ANY || want == child_now)
		return;
	if (kill(g_child, want == CHILD_STOPPED ? SIGSTOP : SIGCONT))
		die("kill(%d): %s", (int)g_child, strerror(errno));
	if (want == CHILD_STOPPED && (waitpid(g_child, &st, WUNTRACED) != g_child || !WIFSTOPPED(st)))
		die("the child did not stop");
	child_now = want;
}

static void end_child(void)
{
	struct cmd c = { .op = CMD_EXIT };
	pid_t pid = g_child;

	if (write(ctl_fd, &c, sizeof(c)) != sizeof(c))
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	g_child = 0;
	close(ctl_fd);
}

/* --- pipes and pipe-max-size --------------------------------------------------------------- */

struct pms_report {
	long orig, raised_to, after;
	char err[96];
};
static struct pms_report pms = { -1, 0, -1, "" };

static long pms_read(void)
{
	char buf[32];

	read_line_of(PIPE_MAX_PATH, NULL, buf, sizeof(buf));
	return buf[0] ? strtol(buf, NULL, 10) : -1;
}

static int pms_raise(size_t to)
{
	char v[32];
	int fd, len, err = 0;
	ssize_t n = -1;

	read_line_of(PIPE_MAX_PATH, NULL, pms_orig, sizeof(pms_orig) - 1);
	if (!pms_orig[0])
		return -ENOENT;
	strcat(pms_orig, "\n");
	pms_orig_len = strlen(pms_orig);
	len = snprintf(v, sizeof(v), "%zu\n", to);
	/* Raised first, written second: a signal in between writes back a value that is still there. */
	pms_raised = 1;
	fd = open(PIPE_MAX_PATH, O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		n = write(fd, v, len);
	if (n != len)
		err = n < 0 ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (err)
		pms_raised = 0;
	return err;
}

/* Makes the pipes path B uses, before the child exists, so that it inherits their write ends. */
static void make_pipes(void)
{
	size_t most = 0;
	bool tried_raise = false;

	pms.orig = pms_read();
	for (int i = 0; i < NPIPES; i++)
		most = pipe_want[i] > most ? pipe_want[i] : most;
	for (int i = 0; i < NPIPES; i++) {
		int p[2], got;

		if (pipe2(p, O_CLOEXEC))
			die("pipe2: %s", strerror(errno));
		got = fcntl(p[1], F_SETPIPE_SZ, (int)pipe_want[i]);
		if (got < 0 && errno == EPERM && cfg.sysctl && !tried_raise) {
			int err = pms_raise(most);

			tried_raise = true;
			if (err)
				snprintf(pms.err, sizeof(pms.err), "raising %s: %s", PIPE_MAX_PATH,
					 strerror(-err));
			else
				pms.raised_to = most;
			got = fcntl(p[1], F_SETPIPE_SZ, (int)pipe_want[i]);
		}
		if (got < 0) {
			snprintf(pipe_skip[i], sizeof(pipe_skip[i]), "F_SETPIPE_SZ %zu MiB: %s%s",
				 pipe_want[i] / MiB, strerror(errno),
				 cfg.sysctl ? "" : " (--no-sysctl)");
			close(p[0]);
			close(p[1]);
			continue;
		}
		pipe_rd[i] = p[0];
		pipe_wr[i] = p[1];
		pipe_size[i] = got;
	}
	/* A pipe keeps its size: the sysctl is needed for no longer than this. */
	pms_write_back();
	if (pms_raised)
		die("could not write %s back to %.*s", PIPE_MAX_PATH, (int)pms_orig_len - 1, pms_orig);
	pms.after = pms_read();
	if (pms.raised_to && pms.after != pms.orig)
		die("%s is %ld, was %ld", PIPE_MAX_PATH, pms.after, pms.orig);
}

/* --- path A: process_vm_readv + write ------------------------------------------------------- */

struct pvm_arg {
	size_t buf_len;		/* the reused buffer */
	size_t iov_len;		/* one remote iov per iov_len bytes of the buffer */
	char *buf;
	const char *path;
};

static struct iovec riov[MAX_IOV];

static int run_pvm(void *arg, struct sample *s, bool last)
{
	struct pvm_arg *a = arg;
	double t0 = now(), in_readv = 0;
	int fd = open(a->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err = 0;

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < cfg.mem && !err; off += a->buf_len) {
		size_t len = cfg.mem - off < a->buf_len ? cfg.mem - off : a->buf_len;
		struct iovec liov = { a->buf, len };
		unsigned long nr = 0;
		double t1;
		ssize_t n;

		for (size_t o = 0; o < len; o += a->iov_len) {
			riov[nr].iov_base = (void *)(uintptr_t)(child_addr + off + o);
			riov[nr].iov_len = len - o < a->iov_len ? len - o : a->iov_len;
			nr++;
		}
		t1 = now();
		n = process_vm_readv(g_child, &liov, 1, riov, nr, 0);
		in_readv += now() - t1;
		if (n < 0)
			err = -errno;
		else if ((size_t)n != len)
			err = -EIO;
		else
			err = write_full(fd, a->buf, len);
	}
	if (close(fd) && !err)
		err = -errno;
	s->secs = now() - t0;
	s->aux = in_readv / s->secs;
	if (!err && last) {
		uint64_t h;

		err = hash_file(a->path, cfg.mem, &h);
		s->verified = !err && h == child_hash ? 1 : -1;
	}
	if (a->path == g_paths[0])
		unlink(a->path);
	return err;
}

#define NPVM 6
#define PVM_CURRENT 1		/* conf[] index of what src/mem/pages.c does: the base of "paired" */
static struct pvm_arg pvm_args[NPVM];

/* Adds the path A jobs; returns how many. */
static int path_a_jobs(struct job *jobs)
{
	static const struct { size_t buf, iov; } conf[NPVM] = {
		{ 2 * MiB, 2 * MiB },
		{ 4 * MiB, 4 * MiB },	/* what src/mem/pages.c does for a contiguous run */
		{ 16 * MiB, 16 * MiB },
		{ 16 * MiB, 2 * MiB },
		{ 4 * MiB, 64 * KiB },
		{ 4 * MiB, 4 * KiB },	/* one iov a page: memory fragmented to single pages */
	};

	for (int i = 0; i < NPVM; i++) {
		struct pvm_arg *a = &pvm_args[i];
		size_t nr = conf[i].buf / conf[i].iov;
		struct result *r;
		char iovs[64];

		*a = (struct pvm_arg){ conf[i].buf, conf[i].iov, map_mem(conf[i].buf, true), g_paths[0] };
		if (conf[i].iov >= MiB)
			snprintf(iovs, sizeof(iovs), "%zux%zu MiB", nr, conf[i].iov / MiB);
		else
			snprintf(iovs, sizeof(iovs), "%zux%zu KiB", nr, conf[i].iov / KiB);
		r = new_result("A", cfg.mem, "process_vm_readv %2zu MiB buf, %s iov%s + write",
			       conf[i].buf / MiB, iovs, nr > 1 ? "s" : "");
		r->has_aux = true;
		jobs[i] = (struct job){ r, run_pvm, a, CHILD_STOPPED };
	}
	return NPVM;
}

/* --- path B: vmsplice in the child, splice to the file here ---------------------------------- */

struct splice_arg {
	int pipe;
	const char *path;	/* NULL: /dev/null */
};

static int run_splice(void *arg, struct sample *s, bool last)
{
	struct splice_arg *a = arg;
	struct cmd c = { .op = CMD_VMSPLICE, .pipe = a->pipe };
	size_t left = cfg.mem;
	int64_t res = 0;
	double t0 = now();
	int fd, err = 0;

	fd = a->path ? open(a->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
		     : open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(ctl_fd, &c, sizeof(c)) != sizeof(c)) {
		close(fd);
		return -EPIPE;
	}
	while (left) {
		ssize_t n = splice(pipe_rd[a->pipe], NULL, fd, NULL,
				   left < pipe_size[a->pipe] ? left : pipe_size[a->pipe],
				   SPLICE_F_MOVE | SPLICE_F_MORE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* What is left in the pipe would spoil the next run: give up. */
			die("splice from the %zu MiB pipe: %s", pipe_size[a->pipe] / MiB,
			    n ? strerror(errno) : "the child is gone");
		}
		left -= n;
	}
	if (read(ctl_fd, &res, sizeof(res)) != sizeof(res))
		die("the child died during vmsplice");
	if (res)
		die("child: vmsplice: %s", strerror(-res));
	if (close(fd) && !err)
		err = -errno;
	s->secs = now() - t0;
	if (!err && last && a->path) {
		uint64_t h;

		err = hash_file(a->path, cfg.mem, &h);
		s->verified = !err && h == child_hash ? 1 : -1;
	}
	if (a->path)
		unlink(a->path);
	return err;
}

static struct splice_arg splice_args[NPIPES + 1];

/* Adds the path B jobs; returns how many. */
static int path_b_jobs(struct job *jobs)
{
	int n = 0, biggest = -1;

	for (int i = 0; i < NPIPES; i++) {
		struct result *r = new_result("B", cfg.mem, "vmsplice -> %2zu MiB pipe -> splice to tmpfs",
					      pipe_want[i] / MiB);

		if (!pipe_size[i]) {
			snprintf(r->skipped, sizeof(r->skipped), "%s", pipe_skip[i]);
			fprintf(stderr, "  %-5s %-52s skipped: %s\n", r->group, r->name, r->skipped);
			continue;
		}
		if (pipe_size[i] != pipe_want[i])
			snprintf(r->name, sizeof(r->name), "vmsplice -> %zu KiB pipe -> splice to tmpfs",
				 pipe_size[i] / KiB);
		splice_args[i] = (struct splice_arg){ i, g_paths[0] };
		jobs[n++] = (struct job){ r, run_splice, &splice_args[i], CHILD_RUNNING };
		biggest = i;
	}
	if (biggest >= 0) {
		splice_args[NPIPES] = (struct splice_arg){ biggest, NULL };
		jobs[n++] = (struct job){
			new_result("ref", cfg.mem, "vmsplice -> %2zu MiB pipe -> splice to /dev/null",
				   pipe_size[biggest] / MiB),
			run_splice, &splice_args[NPIPES], CHILD_RUNNING };
	}
	return n;
}

/* Paths A and B in one phase, their runs interleaved. */
static void measure_dump(void)
{
	struct job jobs[NPVM + NPIPES + 1];
	int n = path_a_jobs(jobs);

	n += path_b_jobs(jobs + n);
	/* Noise here comes in bursts; comparing each run with the 4 MiB one of its round cancels much of it. */
	for (int i = 0; i < n; i++)
		jobs[i].r->base = jobs[PVM_CURRENT].r;
	run_jobs(jobs, n);
	for (int i = 0; i < NPVM; i++)
		munmap(pvm_args[i].buf, pvm_args[i].buf_len);
}

/* --- path C: restore reads ----------------------------------------------------------------- */

enum c_mode { C_FRESH, C_POPULATE_WRITE, C_MAP_POPULATE, C_REUSED };

struct read_arg {
	enum c_mode mode;
	char *reused;		/* C_REUSED: populated once, outside the timing */
};

static int run_read(void *arg, struct sample *s, bool last)
{
	struct read_arg *a = arg;
	double t0 = now(), t1;
	int fd = open(g_paths[1], O_RDONLY | O_CLOEXEC), err = 0;
	char *dst;

	if (fd < 0)
		return -errno;
	if (a->mode == C_REUSED) {
		dst = a->reused;
	} else {
		dst = map_mem(cfg.mem, a->mode == C_MAP_POPULATE);
		if (a->mode == C_POPULATE_WRITE && madvise(dst, cfg.mem, MADV_POPULATE_WRITE))
			err = -errno;
	}
	t1 = now();
	if (!err)
		err = read_full(fd, dst, cfg.mem);	/* one call, as src/mem/premap.c reads a run */
	close(fd);
	s->secs = now() - t0;
	s->aux = (t1 - t0) / s->secs;
	if (!err && last)
		s->verified = hash_mem(dst, cfg.mem) == child_hash ? 1 : -1;
	if (dst != a->reused)
		munmap(dst, cfg.mem);
	return err;
}

static void measure_restore(void)
{
	static const struct { enum c_mode mode; const char *group, *name; } conf[] = {
		{ C_FRESH, "C", "read() into fresh memory (faults per page)" },
		{ C_POPULATE_WRITE, "C", "mmap + MADV_POPULATE_WRITE, then read()" },
		{ C_MAP_POPULATE, "C", "mmap(MAP_POPULATE), then read()" },
		{ C_REUSED, "ref", "read() into populated memory (tmpfs read limit)" },
	};
	struct read_arg args[4];
	struct job jobs[4];
	char *reused = map_mem(cfg.mem, true);

	for (int i = 0; i < 4; i++) {
		args[i] = (struct read_arg){ conf[i].mode, reused };
		jobs[i] = (struct job){ new_result(conf[i].group, cfg.mem, "%s", conf[i].name),
					run_read, &args[i] };
		jobs[i].r->has_aux = conf[i].mode == C_POPULATE_WRITE || conf[i].mode == C_MAP_POPULATE;
	}
	for (int i = 0; i < 4; i++)
		jobs[i].r->base = jobs[1].r;	/* MADV_POPULATE_WRITE + read: src/mem/premap.c */
	run_jobs(jobs, 4);
	munmap(reused, cfg.mem);
}

/* The image path C reads: written once through path A (not timed) and checked. */
static void make_restore_image(void)
{
	struct pvm_arg a = { 4 * MiB, 4 * MiB, NULL, g_paths[1] };
	struct sample s = { 0 };
	int err;

	a.buf = map_mem(a.buf_len, true);
	err = run_pvm(&a, &s, true);
	munmap(a.buf, a.buf_len);
	if (err || s.verified != 1)
		die("writing the restore image %s: %s", g_paths[1], err ? strerror(-err) : "mismatch");
}

/* --- output -------------------------------------------------------------------------------- */

static struct {
	char date[32], kernel[128], cpu[128], thp[64];
	char load_start[64], load_end[64];	/* /proc/loadavg: others' work skews the figures */
	long nproc;
	double cpu_busy0, cpu_steal0, cpu_total0;
	double others_busy;	/* share of all CPUs busy with other processes during the run */
	double steal;		/* share of all CPUs taken by the hypervisor (steal) */
} mach;

/* Busy, steal and total CPU seconds of the whole machine since boot, from /proc/stat. */
static void cpu_times(double *busy, double *steal, double *total)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	double hz = sysconf(_SC_CLK_TCK);

	*busy = *steal = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) >= 8) {
		/* user nice system idle iowait irq softirq steal (guest time is inside user) */
		*busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*steal = v[7] / hz;
		*total = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
	}
	fclose(f);
}

static double own_cpu(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return self.ru_utime.tv_sec + self.ru_utime.tv_usec * 1e-6 + self.ru_stime.tv_sec +
	       self.ru_stime.tv_usec * 1e-6 + kids.ru_utime.tv_sec + kids.ru_utime.tv_usec * 1e-6 +
	       kids.ru_stime.tv_sec + kids.ru_stime.tv_usec * 1e-6;
}

/* Called at the end: how much of the machine other processes and the hypervisor took. */
static void machine_contention(void)
{
	double busy, steal, total;

	cpu_times(&busy, &steal, &total);
	total -= mach.cpu_total0;
	if (total <= 0)
		return;
	mach.others_busy = (busy - mach.cpu_busy0 - own_cpu()) / total;
	if (mach.others_busy < 0)
		mach.others_busy = 0;
	mach.steal = (steal - mach.cpu_steal0) / total;
}

static void machine_info(void)
{
	struct utsname u;
	time_t t = time(NULL);

	strftime(mach.date, sizeof(mach.date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	if (!uname(&u))
		snprintf(mach.kernel, sizeof(mach.kernel), "%s", u.release);
	mach.nproc = sysconf(_SC_NPROCESSORS_ONLN);
	read_line_of("/proc/cpuinfo", "model name", mach.cpu, sizeof(mach.cpu));
	read_line_of("/sys/kernel/mm/transparent_hugepage/enabled", NULL, mach.thp, sizeof(mach.thp));
	read_line_of("/proc/loadavg", NULL, mach.load_start, sizeof(mach.load_start));
	cpu_times(&mach.cpu_busy0, &mach.cpu_steal0, &mach.cpu_total0);
}

static void print_table(void)
{
	printf("\npagecopy %s  kernel %s  %ld CPU  %s  THP %s\n", mach.date, mach.kernel, mach.nproc,
	       mach.cpu, mach.thp);
	printf("child memory %zu MiB (4 KiB pages, random data); limit buffers %zu MiB; files on %s\n",
	       cfg.mem / MiB, cfg.limit_len / MiB, cfg.dir);
	printf("median of %d runs after %d warm-up; GB/s = 10^9 bytes/s; ratios are medians over the limit medians\n",
	       cfg.runs, cfg.warmup);
	printf("loadavg at start: %s; at end: %s\n", mach.load_start, mach.load_end);
	printf("during the run, other processes kept %.0f%% of the %ld CPUs busy; hypervisor steal %.1f%%\n",
	       mach.others_busy * 100, mach.nproc, mach.steal * 100);
	if (pms.raised_to)
		printf("%s: %ld, raised to %ld to size the pipes, written back: now %ld\n",
		       PIPE_MAX_PATH, pms.orig, pms.raised_to, pms.after);
	else
		printf("%s: %ld, not changed%s%s\n", PIPE_MAX_PATH, pms.orig,
		       pms.err[0] ? "; " : "", pms.err);
	printf("paired: speed relative to what crest does now, as the median over the rounds of the per-round\n"
	       "        ratio (runs alternate, so a burst of load hits both): A and B against A with a 4 MiB\n"
	       "        buffer (src/mem/pages.c), C against MADV_POPULATE_WRITE + read (src/mem/premap.c)\n");
	printf("\n%-5s  %-52s %7s %7s %7s %8s %9s %6s %5s  %s\n", "group", "measurement", "median",
	       "min", "max", "/memcpy", "/tmpfs-wr", "paired", "check", "note");
	for (int i = 0; i < nresults; i++) {
		struct result *r = &results[i];
		char note[64] = "", paired[16] = "-";

		if (r->skipped[0]) {
			printf("%-5s  %-52s skipped: %s\n", r->group, r->name, r->skipped);
			continue;
		}
		if (r->has_aux)
			snprintf(note, sizeof(note), "%.0f%% of the time in %s", r->aux_med * 100,
				 r->group[0] == 'A' ? "process_vm_readv" : "mmap+populate");
		if (r->base)
			snprintf(paired, sizeof(paired), "%.2f", r->paired);
		printf("%-5s  %-52s %7.2f %7.2f %7.2f %7.0f%% %8.0f%% %6s %5s  %s\n", r->group, r->name,
		       r->med, r->lo, r->hi, r->med / lim_memcpy * 100, r->med / lim_tmpfs * 100,
		       paired, r->verified > 0 ? "ok" : r->verified < 0 ? "BAD" : "-", note);
	}
	fflush(stdout);
}

static void write_json(void)
{
	FILE *f = fopen(cfg.json, "we");

	if (!f)
		die("cannot write %s: %s", cfg.json, strerror(errno));
	fprintf(f, "{\n  \"date\": ");
	json_str(f, mach.date);
	fprintf(f, ",\n  \"machine\": {\"kernel\": ");
	json_str(f, mach.kernel);
	fprintf(f, ", \"nproc\": %ld, \"cpu\": ", mach.nproc);
	json_str(f, mach.cpu);
	fprintf(f, ", \"thp\": ");
	json_str(f, mach.thp);
	fprintf(f, ", \"loadavg_start\": ");
	json_str(f, mach.load_start);
	fprintf(f, ", \"loadavg_end\": ");
	json_str(f, mach.load_end);
	fprintf(f, ", \"others_cpu_busy\": %.4f, \"steal\": %.4f", mach.others_busy, mach.steal);
	fprintf(f, "},\n  \"params\": {\"mem_bytes\": %zu, \"limit_bytes\": %zu, \"runs\": %d, "
		"\"warmup\": %d, \"dir\": ", cfg.mem, cfg.limit_len, cfg.runs, cfg.warmup);
	json_str(f, cfg.dir);
	fprintf(f, "},\n  \"pipe_max_size\": {\"original\": %ld, \"raised_to\": %ld, \"after\": %ld},\n",
		pms.orig, pms.raised_to, pms.after);
	fprintf(f, "  \"limits_gbps\": {\"memcpy\": %.4f, \"tmpfs_write\": %.4f},\n", lim_memcpy,
		lim_tmpfs);
	fprintf(f, "  \"results\": [\n");
	for (int i = 0; i < nresults; i++) {
		struct result *r = &results[i];

		fprintf(f, "    {\"group\": ");
		json_str(f, r->group);
		fprintf(f, ", \"name\": ");
		json_str(f, r->name);
		if (r->skipped[0]) {
			fprintf(f, ", \"skipped\": ");
			json_str(f, r->skipped);
			fprintf(f, "}%s\n", i + 1 < nresults ? "," : "");
			continue;
		}
		fprintf(f, ", \"bytes\": %zu, \"median_gbps\": %.4f, \"min_gbps\": %.4f, "
			"\"max_gbps\": %.4f, \"ratio_memcpy\": %.4f, \"ratio_tmpfs_write\": %.4f, "
			"\"verified\": %s", r->bytes, r->med, r->lo, r->hi, r->med / lim_memcpy,
			r->med / lim_tmpfs, r->verified > 0 ? "true" : r->verified < 0 ? "false" : "null");
		if (r->base) {
			fprintf(f, ", \"paired_base\": ");
			json_str(f, r->base->name);
			fprintf(f, ", \"paired\": %.4f", r->paired);
		}
		if (r->has_aux)
			fprintf(f, ", \"%s_share_median\": %.4f",
				r->group[0] == 'A' ? "readv" : "populate", r->aux_med);
		fprintf(f, ", \"runs_s\": [");
		for (int j = 0; j < r->n; j++)
			fprintf(f, "%s%.6f", j ? ", " : "", r->secs[j]);
		fprintf(f, "]}%s\n", i + 1 < nresults ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f))
		die("writing %s: %s", cfg.json, strerror(errno));
}

/* --- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pagecopy [options]\n"
		"  -m, --mem MIB        memory in the child, copied by paths A, B and C (default 1024)\n"
		"  -l, --limit-mem MIB  buffer of the memcpy and tmpfs-write limits (default 1024)\n"
		"  -r, --runs N         timed runs per measurement; the median is reported (default 5)\n"
		"  -w, --warmup N       untimed runs before them (default 1)\n"
		"  -o, --json PATH      JSON output (default build/bench/pagecopy.json)\n"
		"  -d, --dir DIR        where the image files go; should be tmpfs (default /dev/shm)\n"
		"      --no-sysctl      never raise %s for the big pipes\n"
		"  -h, --help\n", PIPE_MAX_PATH);
}

static size_t parse_mib(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || !v || v > (1UL << 20))
		die("%s: bad size %s (MiB)", what, s);
	return v * MiB;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "limit-mem", required_argument, NULL, 'l' },
		{ "runs", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "json", required_argument, NULL, 'o' },
		{ "dir", required_argument, NULL, 'd' },
		{ "no-sysctl", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "m:l:r:w:o:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': cfg.mem = parse_mib(optarg, "--mem"); break;
		case 'l': cfg.limit_len = parse_mib(optarg, "--limit-mem"); break;
		case 'r': cfg.runs = atoi(optarg); break;
		case 'w': cfg.warmup = atoi(optarg); break;
		case 'o': cfg.json = optarg; break;
		case 'd': cfg.dir = optarg; break;
		case 'S': cfg.sysctl = false; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || cfg.runs < 1 || cfg.runs > MAX_RUNS || cfg.warmup < 0)
		die("bad arguments (--runs 1..%d, --warmup >= 0); see --help", MAX_RUNS);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	FILE *probe;

	parse_args(argc, argv);
	/* Fail on a bad JSON path now, not after two minutes of measuring. */
	probe = fopen(cfg.json, "ae");
	if (!probe)
		die("cannot write %s: %s", cfg.json, strerror(errno));
	fclose(probe);
	snprintf(g_paths[0], sizeof(g_paths[0]), "%s/crest-pagecopy-%d.img", cfg.dir, (int)getpid());
	snprintf(g_paths[1], sizeof(g_paths[1]), "%s/crest-pagecopy-%d-restore.img", cfg.dir,
		 (int)getpid());
	atexit(at_exit);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	machine_info();
	scratch = map_mem(IO_CHUNK, true);

	fprintf(stderr, "pagecopy: limits (%zu MiB)\n", cfg.limit_len / MiB);
	measure_limits();

	make_pipes();
	fprintf(stderr, "pagecopy: populating %zu MiB in the child\n", cfg.mem / MiB);
	start_child();

	fprintf(stderr, "pagecopy: paths A (child stopped) and B (child running), interleaved\n");
	measure_dump();

	fprintf(stderr, "pagecopy: path C (restore reads)\n");
	set_child(CHILD_RUNNING);
	make_restore_image();
	end_child();
	for (int i = 0; i < NPIPES; i++)
		if (pipe_rd[i] >= 0)
			close(pipe_rd[i]);
	measure_restore();
	unlink(g_paths[1]);

	read_line_of("/proc/loadavg", NULL, mach.load_end, sizeof(mach.load_end));
	machine_contention();
	print_table();
	write_json();
	printf("\nJSON: %s\n", cfg.json);
	return 0;
}
