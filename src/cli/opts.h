/* The parsed command line: filled once by src/cli/main.c, passed as const everywhere. */
#ifndef CREST_CLI_OPTS_H
#define CREST_CLI_OPTS_H

#include <stdbool.h>
#include <sys/types.h>

struct crest_opts {
	const char *verb;
	pid_t pid;			/* -t */
	const char *images_dir;		/* -D, default "." */
	const char *log_file;		/* -o */
	int verbosity;			/* -v0..-v4 (default 2) */
	bool leave_running;		/* -R */
	bool shell_job;			/* -j */
	bool restore_detached;		/* -d */
	const char *pidfile;		/* --pidfile */
	int timeout_s;			/* --timeout, seconds to wait for tasks to stop */
	bool display_stats;		/* --display-stats */
	int nr_args;			/* positional arguments after the verb */
	char **args;
};

int cmd_dump(const struct crest_opts *opts);
int cmd_restore(const struct crest_opts *opts);
int cmd_check(const struct crest_opts *opts);
int cmd_show(const struct crest_opts *opts);

#endif
