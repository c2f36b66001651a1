/* The dump and restore verbs: argument checks, then the core. */
#include <errno.h>
#include <stdio.h>

#include "cli/opts.h"
#include "core/dump.h"
#include "core/restore.h"
#include "util/log.h"

int cmd_dump(const struct crest_opts *opts)
{
	if (opts->pid <= 0) {
		pr_err("dump needs the root of the tree to dump: -t PID");
		return -EINVAL;
	}
	if (opts->tcp_established) {
		pr_err("--tcp-established: saving established TCP connections is not supported yet");
		return -EOPNOTSUPP;
	}
	return crest_dump(opts);
}

int cmd_restore(const struct crest_opts *opts)
{
	if (opts->pid > 0) {
		pr_err("restore takes no -t: the image names its own tree");
		return -EINVAL;
	}
	return crest_restore(opts);
}
