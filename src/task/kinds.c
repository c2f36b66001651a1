/*
 * The table of task kinds, and the loops that run them. One line per kind; a kind's state,
 * record and ops live in its own file.
 */
#define LOG_PREFIX "task: "
#include "task/task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

extern const struct task_kind task_kind_rlimits;
extern const struct task_kind task_kind_sched;
extern const struct task_kind task_kind_itimers;
extern const struct task_kind task_kind_posix_timers;
extern const struct task_kind task_kind_sigaltstack;
extern const struct task_kind task_kind_robust_list;
extern const struct task_kind task_kind_prctl_misc;
extern const struct task_kind task_kind_fsroot;
extern const struct task_kind task_kind_seccomp;
extern const struct task_kind task_kind_creds;
extern const struct task_kind task_kind_seccomp_strict;

/* In the order their restore takes effect: credentials and seccomp must stay last. */
const struct task_kind *const task_kinds[] = {
	&task_kind_rlimits,
	&task_kind_sched,
	&task_kind_itimers,
	&task_kind_posix_timers,
	&task_kind_sigaltstack,
	&task_kind_robust_list,
	&task_kind_prctl_misc,
	/* After everything that needs crest's paths; chroot needs crest's CAP_SYS_CHROOT. */
	&task_kind_fsroot,
	/*
	 * Last, in this order (see task/seccomp.c): filters while the thread still has crest's
	 * CAP_SYS_ADMIN and no no_new_privs for TSYNC to spread; then credentials, which take
	 * the capabilities every earlier kind may need; strict mode, which forbids nearly every
	 * syscall, at the very end. Keep new kinds above these three.
	 */
	&task_kind_seccomp,
	&task_kind_creds,
	&task_kind_seccomp_strict,
	NULL,
};

static const struct task_kind *kind_by_name(const char *name)
{
	for (size_t i = 0; task_kinds[i]; i++)
		if (!strcmp(task_kinds[i]->name, name))
			return task_kinds[i];
	return NULL;
}

const ProtobufCMessageDescriptor *task_kind_payload_desc(const char *name)
{
	const struct task_kind *kind = kind_by_name(name);

	return kind ? kind->desc : NULL;
}

/* Packs rec into a new task_extra appended to *extras. */
static int add_extra(const struct task_kind *kind, ProtobufCMessage *rec, TaskExtra ***extras,
		     size_t *nr)
{
	size_t len = protobuf_c_message_get_packed_size(rec);
	TaskExtra *te = xmalloc(sizeof(*te)), **grown;

	grown = xrealloc(*extras, (*nr + 1) * sizeof(**extras));
	if (!te || !grown) {
		free(te);
		return -ENOMEM;
	}
	*extras = grown;
	task_extra__init(te);
	te->kind = xstrdup(kind->name);
	te->payload.len = len;
	te->payload.data = xmalloc(len);
	(*extras)[(*nr)++] = te;
	if (!te->kind || !te->payload.data)
		return -ENOMEM;
	protobuf_c_message_pack(rec, te->payload.data);
	return 0;
}

typedef int (*dump_op)(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret);

static int dump_kinds(struct infect_ctl *ctl, pid_t pid, bool thread, TaskExtra ***extras,
		      size_t *nr)
{
	for (size_t i = 0; task_kinds[i]; i++) {
		dump_op op = thread ? task_kinds[i]->dump_thread : task_kinds[i]->dump;
		ProtobufCMessage *rec = NULL;
		int ret;

		if (!op)
			continue;
		ret = op(ctl, pid, &rec);
		if (!ret && rec)
			ret = add_extra(task_kinds[i], rec, extras, nr);
		if (rec)
			protobuf_c_message_free_unpacked(rec, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

int task_dump_extras(struct infect_ctl *ctl, pid_t pid, TaskCore *tc)
{
	return dump_kinds(ctl, pid, false, &tc->extras, &tc->n_extras);
}

int task_dump_thread_extras(struct infect_ctl *ctl, pid_t tid, ThreadCore *th)
{
	return dump_kinds(ctl, tid, true, &th->extras, &th->n_extras);
}

void task_free_extras(TaskExtra **extras, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(extras[i]->kind);
		free(extras[i]->payload.data);
		free(extras[i]);
	}
	free(extras);
}

/* Finds the record of kind in extras and decodes it; *ret is NULL when there is none. */
static int find_record(pid_t pid, const struct task_kind *kind, TaskExtra *const *extras,
		       size_t nr, ProtobufCMessage **ret)
{
	*ret = NULL;
	for (size_t i = 0; i < nr; i++) {
		if (strcmp(extras[i]->kind, kind->name))
			continue;
		*ret = protobuf_c_message_unpack(kind->desc, NULL, extras[i]->payload.len,
						 extras[i]->payload.data);
		if (!*ret)
			return pr_errno(-EINVAL, "pid %d: undecodable '%s' record", pid, kind->name);
		return 0;
	}
	return 0;
}

/* A record of a kind this crest does not know would be lost: refuse it. */
static int check_known(pid_t pid, TaskExtra *const *extras, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (!kind_by_name(extras[i]->kind))
			return pr_errno(-EINVAL, "pid %d: the image has task state '%s' this crest does not know",
					pid, extras[i]->kind);
	return 0;
}

int task_restore_self(pid_t pid, const TaskCore *tc)
{
	int ret = check_known(pid, tc->extras, tc->n_extras);

	for (size_t i = 0; !ret && task_kinds[i]; i++) {
		const struct task_kind *kind = task_kinds[i];
		ProtobufCMessage *rec;

		if (!kind->restore_self)
			continue;
		ret = find_record(pid, kind, tc->extras, tc->n_extras, &rec);
		if (!ret && rec)
			ret = kind->restore_self(pid, rec);
		if (rec)
			protobuf_c_message_free_unpacked(rec, NULL);
	}
	return ret;
}

/* One kind, process-wide then per thread, so that table order is the order of effects. */
static int restore_final_kind(const struct task_kind *kind, struct infect_ctl *ctl, pid_t pid,
			      const TaskCore *tc, ThreadCore *const *threads, size_t nr)
{
	ProtobufCMessage *rec = NULL;
	int ret = 0;

	if (kind->restore_final)
		ret = find_record(pid, kind, tc->extras, tc->n_extras, &rec);
	if (!ret && rec)
		ret = kind->restore_final(ctl, pid, rec);
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
	for (size_t t = 0; !ret && kind->restore_thread_final && t < nr; t++) {
		ret = find_record(threads[t]->tid, kind, threads[t]->extras, threads[t]->n_extras, &rec);
		if (!ret && rec)
			ret = kind->restore_thread_final(ctl, pidns_host(threads[t]->tid), rec);
		if (rec)
			protobuf_c_message_free_unpacked(rec, NULL);
	}
	return ret;
}

int task_restore_final(struct infect_ctl *ctl, pid_t pid, const TaskCore *tc,
		       ThreadCore *const *threads, size_t nr)
{
	int ret = 0;

	for (size_t t = 0; !ret && t < nr; t++)
		ret = check_known(threads[t]->tid, threads[t]->extras, threads[t]->n_extras);
	for (size_t i = 0; !ret && task_kinds[i]; i++)
		ret = restore_final_kind(task_kinds[i], ctl, pid, tc, threads, nr);
	return ret;
}
