/* Small helpers: time, statistics, memory and file-system room, process reaping. */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(const double *v, int n)
{
	double tmp[MAX_RUNS];

	if (n <= 0)
		return 0;
	if (n > MAX_RUNS)
		n = MAX_RUNS;
	memcpy(tmp, v, n * sizeof(*v));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

double min_of(const double *v, int n)
{
	double m = n > 0 ? v[0] : 0;

	for (int i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

double max_of(const double *v, int n)
{
	double m = n > 0 ? v[0] : 0;

	for (int i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

long mem_available_mib(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib / 1024;
}

long fs_free_mib(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv))
		return -1;
	return (long)((uint64_t)sv.f_bavail * sv.f_frsize / MiB);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) && errno != ENOENT)
		note("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

int remove_tree(const char *path)
{
	if (access(path, F_OK))
		return 0;
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

static uint64_t tree_sum;

static int add_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_F && S_ISREG(st->st_mode))
		tree_sum += st->st_size;
	return 0;
}

uint64_t tree_bytes(const char *path)
{
	tree_sum = 0;
	nftw(path, add_one, 16, FTW_PHYS);
	return tree_sum;
}

void reap_children(void)
{
	while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
		;
}

/* True while pid exists, zombies included: their pids cannot be reused yet (restore needs them
 * back: clone3 with set_tid fails with EEXIST while a zombie holds the pid). */
static bool pid_exists(pid_t pid)
{
	return kill(pid, 0) == 0 || errno != ESRCH;
}

int wait_pids_gone(const pid_t *pids, long n, double timeout_s)
{
	double deadline = now_s() + timeout_s;
	long i = 0;

	while (i < n) {
		reap_children();
		if (!pid_exists(pids[i])) {
			i++;
			continue;
		}
		if (stop_requested)
			return -EINTR;
		if (now_s() > deadline) {
			note("pid %d still exists after %.0f s", pids[i], timeout_s);
			return -ETIMEDOUT;
		}
		usleep(500);
	}
	return 0;
}

void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("crestbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
