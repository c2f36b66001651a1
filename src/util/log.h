/* Logging: one line per message, prefixed by the file's LOG_PREFIX, to stderr or -o FILE. */
#ifndef CREST_UTIL_LOG_H
#define CREST_UTIL_LOG_H

#include <errno.h>
#include <string.h>

enum log_level {
	LOG_MSG = 0,	/* always printed: results the user asked for */
	LOG_ERROR = 1,
	LOG_WARN = 2,
	LOG_INFO = 3,
	LOG_DEBUG = 4,
};

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

/* Set the verbosity (-v0..-v4) and, if path is not NULL, send the log to that file. */
int log_init(int level, const char *path);
int log_level(void);
/* The descriptor the log goes to; moved to a number >= min_fd (restore keeps low fds free). */
int log_fd(void);
int log_move_fd(int min_fd);
void log_printf(int level, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define pr_msg(fmt, ...)   log_printf(LOG_MSG, "", fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...)   log_printf(LOG_ERROR, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  log_printf(LOG_WARN, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  log_printf(LOG_INFO, LOG_PREFIX, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_printf(LOG_DEBUG, LOG_PREFIX, fmt, ##__VA_ARGS__)
/* pr_perror: like pr_err, with ": strerror(errno)" appended. errno is preserved. */
#define pr_perror(fmt, ...) do { int __e = errno; \
	log_printf(LOG_ERROR, LOG_PREFIX, fmt ": %s", ##__VA_ARGS__, strerror(__e)); \
	errno = __e; } while (0)
/* pr_errno: like pr_perror for a negative errno value err; evaluates to err. */
#define pr_errno(err, fmt, ...) ({ int __r = (err); \
	log_printf(LOG_ERROR, LOG_PREFIX, fmt ": %s", ##__VA_ARGS__, strerror(-__r)); __r; })

#endif
