#define LOG_PREFIX "util: "
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		pr_err("cannot allocate %zu bytes", size);
	return p;
}

void *xzalloc(size_t size)
{
	void *p = calloc(1, size ? size : 1);

	if (!p)
		pr_err("cannot allocate %zu bytes", size);
	return p;
}

void *xrealloc(void *old, size_t size)
{
	void *p = realloc(old, size ? size : 1);

	if (!p)
		pr_err("cannot reallocate to %zu bytes", size);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		pr_err("cannot duplicate a string of %zu bytes", strlen(s));
	return p;
}

int xgrow(void **array, size_t *cap, size_t need, size_t elem_size)
{
	size_t ncap = *cap ? *cap : 8;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = xrealloc(*array, ncap * elem_size);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * elem_size, 0, (ncap - *cap) * elem_size);
	*array = p;
	*cap = ncap;
	return 0;
}

char *read_file_at(int dirfd, const char *path, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	char *buf = NULL;
	int fd, saved;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	if (!buf)
		goto out_close;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out_free;
		}
		if (n == 0)
			break;
		len += n;
		if (len == cap) {
			char *nb = realloc(buf, cap * 2 + 1);

			if (!nb)
				goto out_free;
			buf = nb;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	close(fd);
	if (ret_len)
		*ret_len = len;
	return buf;
out_free:
	saved = errno;
	free(buf);
	errno = saved;
out_close:
	saved = errno;
	close(fd);
	errno = saved;
	return NULL;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Reads exactly len bytes, at off (pread) or, with off < 0, at the file position (read). */
static int read_exactly(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = off < 0 ? read(fd, p, len) : pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		p += n;
		len -= n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int pread_all(int fd, void *buf, size_t len, off_t off)
{
	return read_exactly(fd, buf, len, off);
}

int read_all(int fd, void *buf, size_t len)
{
	return read_exactly(fd, buf, len, -1);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
