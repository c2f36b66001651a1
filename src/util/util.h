/* Small helpers shared by every part of crest. */
#ifndef CREST_UTIL_UTIL_H
#define CREST_UTIL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE_4K 4096UL
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((typeof(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((typeof(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
/* Closes fd if open and returns -1, so that `fd = safe_close(fd);` also clears it. */
static inline int safe_close(int fd) { if (fd >= 0) close(fd); return -1; }

#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

/* Allocation that logs on failure; callers still check for NULL. */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* Grows *array (of *cap elements of elem_size) so that it holds at least need elements. */
int xgrow(void **array, size_t *cap, size_t need, size_t elem_size);

/* Reads a whole small file (procfs, sysfs) into a NUL-terminated buffer; NULL with errno. */
char *read_file_at(int dirfd, const char *path, size_t *ret_len);
/* Writes all of buf or fails: 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes at off (pread), or fails: 0, -errno, or -ENODATA on a short file. */
int pread_all(int fd, void *buf, size_t len, off_t off);
int read_all(int fd, void *buf, size_t len);

/* Monotonic time in nanoseconds, for --display-stats and timeouts. */
uint64_t now_ns(void);

#endif
