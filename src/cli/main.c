/* crest: the command line. Verbs and option names follow CRIU's wherever CRIU has them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/opts.h"
#include "util/log.h"

struct verb {
	const char *name;
	int (*run)(const struct crest_opts *opts);
	const char *usage;	/* synopsis and the options that matter for this verb */
};

static const struct verb verbs[] = {
	{ "dump", cmd_dump,
	  "crest dump -t PID -D DIR [options]\n"
	  "  Checkpoint the process tree rooted at PID into the image directory DIR.\n"
	  "  The tree is killed after a successful dump unless -R is given; a dump that fails\n"
	  "  leaves it running as before.\n"
	  "  -t, --tree PID          root of the tree to dump\n"
	  "  -D, --images-dir DIR    image directory (created if missing; files are 0600)\n"
	  "  -R, --leave-running     let the tree run on after the dump\n"
	  "  -j, --shell-job         the tree belongs to a shell's session and terminal\n"
	  "      --timeout S         seconds to wait for each task to stop (default 10)\n"
	  "      --ghost-limit SIZE  largest deleted-but-open file to save (default 1M;\n"
	  "                          K, M, G suffixes)\n"
	  "      --file-locks        save file locks (without it, a held lock fails the dump)\n"
	  "      --ext-unix-sk       allow unix sockets whose peer is outside the tree\n"
	  "      --tcp-established   CRIU's option; established TCP is not supported yet\n"
	  "      --tcp-close         save TCP connections as closed: after restore the program\n"
	  "                          finds each reset by its peer (ECONNRESET, then end of file;\n"
	  "                          writes fail with EPIPE), with its fd number and options\n"
	  "      --compress          compress page data (zstd, in independent 1 MiB chunks)\n"
	  "      --display-stats     print the time of each stage\n" },
	{ "restore", cmd_restore,
	  "crest restore -D DIR [options]\n"
	  "  Restore the tree saved in DIR with its original PIDs. Without -d crest waits for\n"
	  "  the restored root and exits with its status (128+N if killed by signal N).\n"
	  "  -D, --images-dir DIR    image directory\n"
	  "  -d, --restore-detached  return once the tree runs\n"
	  "      --pidfile FILE      write the restored root's PID to FILE\n"
	  "  -j, --shell-job         put a shell job onto crest's own terminal\n"
	  "      --ext-unix-sk       reconnect unix sockets whose peer was outside the tree\n"
	  "      --tcp-close         CRIU's option; accepted: connections are closed already by\n"
	  "                          `crest dump --tcp-close`, images hold no live ones\n"
	  "      --no-thp            fill memory in 4 KiB pages only (slower); by default whole\n"
	  "                          2 MiB blocks are filled as transparent huge pages\n"
	  "      --display-stats     print the time of each stage\n" },
	{ "check", cmd_check,
	  "crest check\n"
	  "  Report which kernel features crest relies on are present here.\n" },
	{ "run", cmd_run,
	  "crest run [options] [--] CMD [ARGS...]\n"
	  "  Start CMD so that it can be checkpointed with its namespaces: in new pid, uts and\n"
	  "  ipc namespaces (whose SysV and POSIX IPC objects a dump saves; CMD is pid 1 of its\n"
	  "  pid namespace, so it ignores signals it has no handler for, and its death ends\n"
	  "  every process of the namespace), as the leader of its own session, detached.\n"
	  "  Print its PID as seen outside and return at once. Put -- before CMD when CMD or\n"
	  "  its arguments start with '-'.\n"
	  "  -i, --stdin FILE        its standard input (default /dev/null)\n"
	  "  -O, --stdout FILE       its standard output, appended to (default /dev/null)\n"
	  "  -E, --stderr FILE       its standard error, appended to (default /dev/null)\n"
	  "      --hostname NAME     the hostname in its new uts namespace\n"
	  "      --timens            a new time namespace too, so that its CLOCK_MONOTONIC and\n"
	  "                          CLOCK_BOOTTIME go on from their values at dump after a restore\n"
	  "      --pidns             a new pid namespace (the default)\n"
	  "      --no-pidns          stay in crest's pid namespace: CMD keeps its pid after a restore\n" },
	{ "show", cmd_show,
	  "crest show [FILE|DIR]...\n"
	  "  Print image files, or a whole image directory, as JSON (default: -D or \".\").\n" },
};

static void print_help(FILE *out)
{
	fprintf(out,
		"Usage: crest VERB [options]\n"
		"Checkpoint/restore of Linux process trees.\n\n"
		"Verbs:\n"
		"  dump      checkpoint a process tree to an image directory\n"
		"  restore   restore a process tree from an image directory\n"
		"  check     report the kernel features crest needs\n"
		"  run       start a command in namespaces of its own, ready to be dumped\n"
		"  show      print images as JSON\n\n"
		"Common options:\n"
		"  -D, --images-dir DIR    image directory (default \".\")\n"
		"  -o, --log-file FILE     write the log to FILE instead of stderr\n"
		"  -v[N], --verbosity[=N]  log level 0 (results only) to 4 (debug); default 2;\n"
		"                          -v alone (or -vv...) raises it by one per v\n"
		"  -h, --help              this help; `crest VERB --help` for a verb\n"
		"  -V, --version           print the version\n");
}

enum {
	OPT_PIDFILE = 256, OPT_TIMEOUT, OPT_STATS, OPT_GHOST_LIMIT, OPT_FILE_LOCKS,
	OPT_EXT_UNIX_SK, OPT_TCP_ESTABLISHED, OPT_TCP_CLOSE, OPT_NO_THP, OPT_COMPRESS, OPT_HOSTNAME, OPT_TIMENS, OPT_PIDNS,
	OPT_NO_PIDNS,
};

static const struct option long_opts[] = {
	{ "tree", required_argument, NULL, 't' },
	{ "images-dir", required_argument, NULL, 'D' },
	{ "log-file", required_argument, NULL, 'o' },
	{ "verbosity", optional_argument, NULL, 'v' },
	{ "leave-running", no_argument, NULL, 'R' },
	{ "shell-job", no_argument, NULL, 'j' },
	{ "restore-detached", no_argument, NULL, 'd' },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "display-stats", no_argument, NULL, OPT_STATS },
	{ "ghost-limit", required_argument, NULL, OPT_GHOST_LIMIT },
	{ "file-locks", no_argument, NULL, OPT_FILE_LOCKS },
	{ "ext-unix-sk", no_argument, NULL, OPT_EXT_UNIX_SK },
	{ "tcp-established", no_argument, NULL, OPT_TCP_ESTABLISHED },
	{ "tcp-close", no_argument, NULL, OPT_TCP_CLOSE },
	{ "no-thp", no_argument, NULL, OPT_NO_THP },
	{ "compress", no_argument, NULL, OPT_COMPRESS },
	{ "stdin", required_argument, NULL, 'i' },
	{ "stdout", required_argument, NULL, 'O' },
	{ "stderr", required_argument, NULL, 'E' },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "timens", no_argument, NULL, OPT_TIMENS },
	{ "pidns", no_argument, NULL, OPT_PIDNS },
	{ "no-pidns", no_argument, NULL, OPT_NO_PIDNS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

/* -v alone adds one level; -vN sets N; -vvv counts. */
static int parse_verbosity(const char *arg, int cur, bool *first)
{
	int level = *first ? LOG_WARN : cur;

	*first = false;
	if (!arg)
		return level + 1;
	if (arg[0] >= '0' && arg[0] <= '9')
		return atoi(arg);
	return level + 1 + (int)strspn(arg, "v");
}

static int parse_number(const char *what, const char *arg, long min, long *ret)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (!*arg || *end || v < min) {
		fprintf(stderr, "Error: %s: not a valid number: '%s'\n", what, arg);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* "1048576", "1024K", "1M", "2G". */
static int parse_size(const char *what, const char *arg, unsigned long long *ret)
{
	char *end;
	unsigned long long v = strtoull(arg, &end, 10);
	int shift = 0;

	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (end == arg || *end || arg[0] == '-') {
		fprintf(stderr, "Error: %s: not a valid size: '%s'\n", what, arg);
		return -EINVAL;
	}
	*ret = v << shift;
	return 0;
}

/* Returns 0 to go on, 1 when help or version was printed, -1 on a bad option. */
static int parse_options(int argc, char **argv, struct crest_opts *o, bool *help)
{
	bool first_v = true;
	long n;
	int c;

	while ((c = getopt_long(argc, argv, "t:D:o:v::RjdhVi:O:E:", long_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_number("-t", optarg, 1, &n))
				return -1;
			o->pid = n;
			break;
		case 'D': o->images_dir = optarg; break;
		case 'o': o->log_file = optarg; break;
		case 'v': o->verbosity = parse_verbosity(optarg, o->verbosity, &first_v); break;
		case 'R': o->leave_running = true; break;
		case 'j': o->shell_job = true; break;
		case 'd': o->restore_detached = true; break;
		case OPT_PIDFILE: o->pidfile = optarg; break;
		case OPT_TIMEOUT:
			if (parse_number("--timeout", optarg, 1, &n))
				return -1;
			o->timeout_s = n;
			break;
		case OPT_STATS: o->display_stats = true; break;
		case OPT_GHOST_LIMIT:
			if (parse_size("--ghost-limit", optarg, &o->ghost_limit))
				return -1;
			break;
		case OPT_FILE_LOCKS: o->file_locks = true; break;
		case OPT_EXT_UNIX_SK: o->ext_unix_sk = true; break;
		case OPT_TCP_ESTABLISHED: o->tcp_established = true; break;
		case OPT_TCP_CLOSE: o->tcp_close = true; break;
		case OPT_NO_THP: o->no_thp = true; break;
		case OPT_COMPRESS: o->compress = true; break;
		case 'i': o->run_stdin = optarg; break;
		case 'O': o->run_stdout = optarg; break;
		case 'E': o->run_stderr = optarg; break;
		case OPT_HOSTNAME: o->run_hostname = optarg; break;
		case OPT_TIMENS: o->run_timens = true; break;
		case OPT_PIDNS: o->run_no_pidns = false; break;
		case OPT_NO_PIDNS: o->run_no_pidns = true; break;
		case 'h': *help = true; break;
		case 'V':
			printf("crest %s\n", CREST_VERSION);
			return 1;
		default:
			fprintf(stderr, "Try 'crest --help'.\n");
			return -1;
		}
	}
	return 0;
}

static const struct verb *find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct crest_opts o = {
		.images_dir = ".", .verbosity = LOG_WARN, .timeout_s = 10, .ghost_limit = 1 << 20,
	};
	const struct verb *verb = NULL;
	bool help = false;
	int ret = parse_options(argc, argv, &o, &help);

	if (ret)
		return ret > 0 ? 0 : 1;
	if (optind < argc) {
		o.verb = argv[optind];
		verb = find_verb(o.verb);
		if (!verb) {
			fprintf(stderr, "Error: unknown verb '%s'. Try 'crest --help'.\n", o.verb);
			return 1;
		}
		o.args = argv + optind + 1;
		o.nr_args = argc - optind - 1;
	}
	if (!verb || help) {
		if (verb)
			fputs(verb->usage, stdout);
		else
			print_help(help ? stdout : stderr);
		return verb || help ? 0 : 1;
	}
	if (log_init(o.verbosity, o.log_file)) {
		fprintf(stderr, "Error: cannot open log file %s: %s\n", o.log_file, strerror(errno));
		return 1;
	}
	ret = verb->run(&o);
	return ret < 0 ? 1 : ret;
}
