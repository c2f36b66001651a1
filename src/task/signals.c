/*
 * Pending signals: read without dequeuing them (PTRACE_PEEKSIGINFO), so a dump that lets the
 * tree run on leaves them where they were. The restorer queues them again in the same order.
 */
#define LOG_PREFIX "task: "
#include "task/task.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "util/log.h"
#include "util/util.h"

#define PEEK_BATCH 32

/* Appends every siginfo of one queue of tid (its own, or the process's with shared). */
int task_dump_pending(pid_t tid, bool shared, ProtobufCBinaryData **ret, size_t *nr)
{
	siginfo_t batch[PEEK_BATCH];
	size_t cap = *nr;

	for (;;) {
		struct __ptrace_peeksiginfo_args arg = {
			.off = *nr, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = PEEK_BATCH,
		};
		long n = ptrace(PTRACE_PEEKSIGINFO, tid, &arg, batch);

		if (n < 0)
			return pr_errno(-errno, "thread %d: cannot read its pending signals", tid);
		if (n == 0)
			return 0;
		if (xgrow((void **)ret, &cap, *nr + n, sizeof(**ret)))
			return -ENOMEM;
		for (long i = 0; i < n; i++) {
			ProtobufCBinaryData *d = &(*ret)[(*nr)++];

			d->data = xmalloc(sizeof(batch[i]));
			if (!d->data)
				return -ENOMEM;
			memcpy(d->data, &batch[i], sizeof(batch[i]));
			d->len = sizeof(batch[i]);
		}
	}
}

void task_free_pending(ProtobufCBinaryData *info, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(info[i].data);
	free(info);
}
