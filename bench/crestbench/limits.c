/*
 * The machine's own limits, measured in the same run as crest, so that crest's figures can be
 * read as shares of what this machine can do at all while it is as busy as it is now:
 *   memcpy     a populated buffer into another populated one (the copy every dump makes);
 *   populate   mmap + MADV_POPULATE_WRITE of fresh memory (what a restore must do first);
 *   write      write() of a populated buffer to a new tmpfs file, 4 MiB at a time (the image);
 *   read       read() of that file back into populated memory, 4 MiB at a time.
 * Each is run opts.runs times, interleaved round by round, so a burst of load from other jobs
 * hits all four; the median, min and max are kept in GB/s (10^9 bytes a second).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define IO_CHUNK (4 * MiB)

struct limits lim;
struct machine mach;

/* The value after "key" and its colon in a "key : value" file, or the first line if key is NULL. */
static void read_field(const char *path, const char *key, char *out, size_t len)
{
	FILE *f = fopen(path, "re");
	char line[512];

	snprintf(out, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *v = line;

		if (key) {
			if (strncmp(line, key, strlen(key)))
				continue;
			v = strchr(line, ':');
			if (!v)
				continue;
			v += 1 + strspn(v + 1, " \t");
		}
		v[strcspn(v, "\n")] = 0;
		snprintf(out, len, "%.*s", (int)len - 1, v);
		break;
	}
	fclose(f);
}

/* Busy and total CPU seconds of the whole machine since boot (/proc/stat). */
static void cpu_times(double *busy, double *total)
{
	unsigned long long v[8] = { 0 };
	double hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "re");

	*busy = *total = 0;
	if (!f)
		return;
	/* user nice system idle iowait irq softirq steal */
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		*busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*total = (v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / hz;
	}
	fclose(f);
}

static double tv_s(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec * 1e-6;
}

/* CPU seconds of crestbench and of every process it reaped: crest, workloads, restored trees. */
static double own_cpu(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return tv_s(self.ru_utime) + tv_s(self.ru_stime) + tv_s(kids.ru_utime) +
	       tv_s(kids.ru_stime);
}

void machine_info(void)
{
	struct utsname u;
	struct rlimit rl;
	time_t t = time(NULL);
	char buf[64];

	strftime(mach.date, sizeof(mach.date), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	if (!uname(&u))
		snprintf(mach.kernel, sizeof(mach.kernel), "%s", u.release);
	mach.nproc = sysconf(_SC_NPROCESSORS_ONLN);
	mach.mem_mib = (long)((uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) / MiB);
	read_field("/proc/cpuinfo", "model name", mach.cpu, sizeof(mach.cpu));
	read_field("/sys/kernel/mm/transparent_hugepage/enabled", NULL, mach.thp, sizeof(mach.thp));
	read_field("/proc/loadavg", NULL, mach.load_start, sizeof(mach.load_start));
	read_field("/proc/sys/vm/max_map_count", NULL, buf, sizeof(buf));
	mach.max_map_count = atol(buf);
	mach.nofile_hard = getrlimit(RLIMIT_NOFILE, &rl) ? -1 : (long)rl.rlim_max;
	cpu_times(&mach.cpu_busy0, &mach.cpu_total0);
}

void machine_contention(void)
{
	double busy, total;

	read_field("/proc/loadavg", NULL, mach.load_end, sizeof(mach.load_end));
	cpu_times(&busy, &total);
	total -= mach.cpu_total0;
	if (total <= 0)
		return;
	mach.others_busy = (busy - mach.cpu_busy0 - own_cpu()) / total;
	if (mach.others_busy < 0)
		mach.others_busy = 0;
}

/* --- the four measurements -------------------------------------------------------------- */

struct limit_bufs {
	char *src, *dst;	/* populated, limit_bytes each */
	char path[320];		/* the tmpfs file */
};

static void *map_populated(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static double time_memcpy(struct limit_bufs *b)
{
	double t0 = now_s();

	memcpy(b->dst, b->src, opts.limit_bytes);
	/* Keeps the compiler from dropping a copy that nothing reads. */
	__asm__ volatile("" : : "r"(b->dst) : "memory");
	return now_s() - t0;
}

static double time_populate(void)
{
	double t0 = now_s(), t;
	void *p = mmap(NULL, opts.limit_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	if (madvise(p, opts.limit_bytes, MADV_POPULATE_WRITE)) {
		note("MADV_POPULATE_WRITE: %s", strerror(errno));
		munmap(p, opts.limit_bytes);
		return -1;
	}
	t = now_s() - t0;
	munmap(p, opts.limit_bytes);
	return t;
}

/* Writes (write true) src to the file or reads it into dst, IO_CHUNK at a time. */
static double time_io(struct limit_bufs *b, bool write_it)
{
	double t0 = now_s();
	int fd = write_it ? open(b->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) :
			    open(b->path, O_RDONLY | O_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < opts.limit_bytes) {
		size_t len = opts.limit_bytes - off < IO_CHUNK ? opts.limit_bytes - off : IO_CHUNK;
		ssize_t n = write_it ? write(fd, b->src + off, len) : read(fd, b->dst + off, len);

		if (n <= 0) {
			note("%s %s: %s", write_it ? "write" : "read", b->path,
			     n ? strerror(errno) : "short file");
			close(fd);
			return -1;
		}
		off += n;
	}
	close(fd);
	return now_s() - t0;
}

static void set_stat(struct stat3 *st, const double *secs, int n)
{
	double gbps[MAX_RUNS];

	for (int i = 0; i < n; i++)
		gbps[i] = opts.limit_bytes / secs[i] / 1e9;
	st->med = median(gbps, n);
	st->min = min_of(gbps, n);
	st->max = max_of(gbps, n);
}

static int run_rounds(struct limit_bufs *b)
{
	double t[4][MAX_RUNS];
	int n = opts.runs;

	for (int i = 0; i < n; i++) {
		t[0][i] = time_memcpy(b);
		t[1][i] = time_populate();
		t[2][i] = time_io(b, true);
		t[3][i] = time_io(b, false);
		unlink(b->path);
		if (t[1][i] < 0 || t[2][i] < 0 || t[3][i] < 0 || stop_requested)
			return -1;
	}
	set_stat(&lim.memcpy_gbps, t[0], n);
	set_stat(&lim.populate_gbps, t[1], n);
	set_stat(&lim.write_gbps, t[2], n);
	set_stat(&lim.read_gbps, t[3], n);
	return 0;
}

int measure_limits(void)
{
	struct limit_bufs b = { 0 };
	int ret = -1;

	snprintf(b.path, sizeof(b.path), "%s/limit.tmp", opts.workdir);
	b.src = map_populated(opts.limit_bytes);
	b.dst = map_populated(opts.limit_bytes);
	if (!b.src || !b.dst) {
		note("limits: cannot map 2 x %zu MiB: %s", opts.limit_bytes / MiB, strerror(errno));
		goto out;
	}
	/* Data that is not zero: tmpfs and the copies must not be able to skip it. */
	for (size_t i = 0; i < opts.limit_bytes; i += sizeof(uint64_t))
		*(uint64_t *)(b.src + i) = i * 0x9e3779b97f4a7c15ULL + 1;
	ret = run_rounds(&b);
	lim.measured = !ret;
out:
	unlink(b.path);
	if (b.src)
		munmap(b.src, opts.limit_bytes);
	if (b.dst)
		munmap(b.dst, opts.limit_bytes);
	return ret;
}

double restore_bound_gbps(void)
{
	if (!lim.measured)
		return 0;
	return 1 / (1 / lim.populate_gbps.med + 1 / lim.read_gbps.med);
}
