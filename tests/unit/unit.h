/* Shared by the unit tests in tests/unit/: a failure counter, CHECK, and log capture. */
#ifndef CREST_TESTS_UNIT_H
#define CREST_TESTS_UNIT_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "util/util.h"

/* Failed checks so far; main() returns non-zero when any. */
static int failures;

/* Reports a failed condition with where it is, and goes on with the test. */
#define CHECK(cond, fmt, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "FAIL %s:%d: %s: " fmt "\n", __func__, __LINE__, #cond, \
			##__VA_ARGS__); \
		failures++; \
	} \
} while (0)

/* What crest logged to path (set with log_init) since the last call; empties it. */
static inline __attribute__((unused)) char *unit_take_log(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	if (truncate(path, 0))
		perror("truncate log");
	return buf;
}

/* This process's /proc/self/fdinfo/FD text (malloc'ed), or NULL. */
static inline __attribute__((unused)) char *unit_fdinfo_of(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	return read_file_at(AT_FDCWD, path, NULL);
}

#endif
