#include "util/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int cur_level = LOG_WARN;
static int log_fd_cur = STDERR_FILENO;

int log_init(int level, const char *path)
{
	cur_level = level;
	if (path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		log_fd_cur = fd;
	}
	return 0;
}

int log_fd(void)
{
	return log_fd_cur;
}

int log_move_fd(int min_fd)
{
	int fd = fcntl(log_fd_cur, F_DUPFD_CLOEXEC, min_fd);

	if (fd < 0)
		return -errno;
	if (log_fd_cur != STDERR_FILENO)
		close(log_fd_cur);
	log_fd_cur = fd;
	return 0;
}

int log_level(void)
{
	return cur_level;
}

void log_printf(int level, const char *prefix, const char *fmt, ...)
{
	char buf[2048];
	int saved = errno, n;
	va_list ap;

	if (level > cur_level)
		return;
	n = snprintf(buf, sizeof(buf), "%s%s", level == LOG_ERROR ? "Error: " : "",
		     cur_level >= LOG_INFO ? prefix : "");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1 > 0 ? sizeof(buf) - n - 1 : 0, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write per line, so lines from the processes of a restore do not interleave. */
	if (write(log_fd_cur, buf, n) < 0)
		(void)0;
	errno = saved;
}
