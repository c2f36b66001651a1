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
	bool compress;			/* --compress: page data in zstd chunks */
	unsigned long long ghost_limit;	/* --ghost-limit: largest deleted file saved (bytes) */
	bool file_locks;		/* --file-locks: save and restore file locks */
	bool ext_unix_sk;		/* --ext-unix-sk: unix peers outside the tree allowed */
	bool tcp_established;		/* --tcp-established: save live TCP connections */
	bool tcp_close;			/* --tcp-close: restore TCP connections closed */
	bool no_thp;			/* --no-thp: restore memory in 4 KiB pages only */
	const char *run_stdin;		/* run -i: the command's standard input (/dev/null) */
	const char *run_stdout;		/* run -O: its standard output, appended (/dev/null) */
	const char *run_stderr;		/* run -E: its standard error, appended (/dev/null) */
	const char *run_hostname;	/* run --hostname: set in its new uts namespace */
	bool run_timens;		/* run --timens: a new time namespace too */
	bool run_no_pidns;		/* run --no-pidns: no new pid namespace (--pidns: one, the default) */
	int nr_args;			/* positional arguments after the verb */
	char **args;
};

int cmd_dump(const struct crest_opts *opts);
int cmd_restore(const struct crest_opts *opts);
int cmd_check(const struct crest_opts *opts);
int cmd_show(const struct crest_opts *opts);
int cmd_run(const struct crest_opts *opts);

#endif
