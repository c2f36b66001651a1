/*
 * The table of task kinds, and the loops that run them. One line per kind; a kind's state,
 * record and ops live in its own file.
 */
#define LOG_PREFIX "task: "
#include "task/task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/util.h"

const struct task_kind *const task_kinds[] = {
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

typedef int (*restore_op)(pid_t pid, const ProtobufCMessage *rec);

/* Decodes each extra and hands it to the op its kind has for this moment. */
static int restore_kinds(pid_t pid, TaskExtra *const *extras, size_t nr, size_t op_offset)
{
	for (size_t i = 0; i < nr; i++) {
		const struct task_kind *kind = kind_by_name(extras[i]->kind);
		ProtobufCMessage *rec;
		restore_op op;
		int ret;

		if (!kind) {
			pr_err("pid %d: the image has task state '%s' this crest does not know",
			       pid, extras[i]->kind);
			return -EINVAL;
		}
		op = *(restore_op *)((const char *)kind + op_offset);
		if (!op)
			continue;
		rec = protobuf_c_message_unpack(kind->desc, NULL, extras[i]->payload.len,
						extras[i]->payload.data);
		if (!rec)
			return pr_errno(-EINVAL, "pid %d: undecodable '%s' record", pid, kind->name);
		ret = op(pid, rec);
		protobuf_c_message_free_unpacked(rec, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

int task_restore_self(pid_t pid, const TaskCore *tc)
{
	return restore_kinds(pid, tc->extras, tc->n_extras,
			     offsetof(struct task_kind, restore_self));
}

int task_restore_final(pid_t pid, const TaskCore *tc, ThreadCore *const *threads, size_t nr)
{
	int ret = restore_kinds(pid, tc->extras, tc->n_extras,
				offsetof(struct task_kind, restore_final));

	for (size_t t = 0; !ret && t < nr; t++)
		ret = restore_kinds(threads[t]->tid, threads[t]->extras, threads[t]->n_extras,
				    offsetof(struct task_kind, restore_thread_final));
	return ret;
}
